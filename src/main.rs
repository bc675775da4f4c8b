//! `speedcamd`: the speedcam daemon and its offline tools.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
