//! `pacsync`: see `pacsync_client::cli`.

fn main() -> std::process::ExitCode {
    pacsync_client::cli::main()
}
