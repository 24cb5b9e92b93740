use clap::Parser;
use std::process::ExitCode;
use vsync_orchestrate::cli::{Cli, Command};
use vsync_orchestrate::commands;

fn main() -> ExitCode {
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
