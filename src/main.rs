use clap::Parser;
use std::process::ExitCode;
use vsync_orchestrate::cli::{Cli, Command};
use vsync_orchestrate::commands;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process, before anything builds a TLS
    // client: with two providers compiled in (different SDKs pull different ones)
    // rustls cannot pick and panics at the first handshake.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    vsync_orchestrate::report::log::init(cli.verbose, cli.log_format);
    // Before any thread exists: environment changes are only safe single-threaded.
    commands::capture_secret_env(&cli);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        if !matches!(cli.command, Command::DemoApp { .. }) {
            commands::install_interrupt_handler();
        }
        commands::dispatch(&cli).await
    });
    ExitCode::from(code)
}
