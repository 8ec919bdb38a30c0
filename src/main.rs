use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = hubgate::cli::Cli::parse();
    // Read while the process has one thread: taking them clears LISTEN_FDS/LISTEN_PID
    // from the environment (so that no child of ours takes the sockets too).
    let sockets = hubgate::web::HandedOver::from_env();
    match hubgate::cli::run(cli, sockets) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hubgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
