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
