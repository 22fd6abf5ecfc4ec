use clap::CommandFactory;
use clap::error::ErrorKind;

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    let base = ["pacsync", "register", "--server", "http://h"];
    Cli::try_parse_from(base.iter().chain(args).copied())
}

#[test]
fn register_takes_the_enrollment_token_from_exactly_one_source() {
    Cli::command().debug_assert();
    let Command::Register(registration) =
        parse(&["--enrollment-token-file", "/t"]).unwrap().command
    else {
        panic!("register");
    };
    assert_eq!(
        registration.enrollment_token_file.as_deref(),
        Some(Path::new("/t"))
    );
    let both = parse(&["--enrollment-token", "x", "--enrollment-token-file", "/t"]);
    assert_eq!(both.unwrap_err().kind(), ErrorKind::ArgumentConflict);
    if std::env::var_os("PACSYNC_ENROLLMENT_TOKEN").is_none() {
        let neither = parse(&[]);
        assert_eq!(
            neither.unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
    }
}

#[test]
fn a_token_file_loses_its_trailing_newline_and_must_not_be_empty() {
    let dir = std::env::temp_dir().join(format!("pacsync-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "pse_abc\n").unwrap();
    assert_eq!(read_token_file(&file).unwrap(), "pse_abc");
    std::fs::write(&file, "\n").unwrap();
    assert_eq!(read_token_file(&file).unwrap_err().exit_code(), 2);
    let missing = read_token_file(&dir.join("missing")).unwrap_err();
    assert_eq!(missing.exit_code(), 2);
    assert!(missing.to_string().contains("missing"), "{missing}");
}

#[test]
fn completions_parse_in_bash_and_the_man_page_names_every_command() {
    let mut script = Vec::new();
    output::completions(clap_complete::Shell::Bash, &mut script);
    let mut bash = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut bash.stdin.take().unwrap(), &script).unwrap();
    assert!(bash.wait().unwrap().success(), "bash -n refused the script");
    let script = String::from_utf8(script).unwrap();
    let mut page = Vec::new();
    output::man_page(&mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(".TH pacsync 1"), "{page}");
    for command in Cli::command().get_subcommands() {
        let name = command.get_name();
        // roff spells a hyphen `\-`.
        assert!(
            page.contains(&name.replace('-', "\\-")),
            "the man page lacks {name}"
        );
        assert!(script.contains(name), "the completions lack {name}");
    }
}
