use clap::Parser;
use std::process::ExitCode;
use vsync_orchestrate::cli::{Cli, Command};
use vsync_orchestrate::commands;

fn main() -> ExitCode {
    // First: a SIGINT/SIGTERM that arrives while the process starts waits for the
    // handler instead of killing a run before it can journal anything.
    vsync_orchestrate::engine::interrupt::hold_early();
    // One TLS crypto provider for the whole process, before anything builds a TLS
    // client: with two providers compiled in (different SDKs pull different ones)
    // rustls cannot pick and panics at the first handshake.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` are not errors; everything else clap refuses
        // is a usage error, with its own code (clap's 2 means "upload failed" here).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.exit_code() == 0 {
                0
            } else {
                vsync_orchestrate::engine::Exit::Usage.code()
            });
        }
    };
    vsync_orchestrate::report::log::init(cli.verbose, cli.log_format);
    // Before any thread exists: environment changes are only safe single-threaded.
    commands::capture_secret_env(&cli);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        // Commands that write stop at a safe point; the others keep the default
        // action, so Ctrl-C ends `status` or `validate` at once.
        if matches!(
            cli.command,
            Command::Run { .. }
                | Command::Plan { .. }
                | Command::Resume { .. }
                | Command::Demo { .. }
        ) {
            commands::install_interrupt_handler();
        }
        vsync_orchestrate::engine::interrupt::release();
        commands::dispatch(&cli).await
    });
    ExitCode::from(code)
}
