use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = hubgate::cli::Cli::parse();
    match hubgate::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hubgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
