//! `pacsync-host`: see `pacsync_host::cli` for the commands.

fn main() -> std::process::ExitCode {
    pacsync_host::cli::main()
}
