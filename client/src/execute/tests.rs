use super::*;

#[test]
fn recognises_pacman_steps() {
    assert_eq!(
        transaction_step("(3/12) upgrading linux"),
        Some("upgrading linux")
    );
    assert_eq!(
        transaction_step("installing bar..."),
        Some("installing bar")
    );
    assert_eq!(transaction_step(":: Processing package changes..."), None);
    assert_eq!(transaction_step("checking for file conflicts..."), None);
}
