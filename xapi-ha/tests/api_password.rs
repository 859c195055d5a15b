//! `session.change_password` on the real agent: a wrong old password is
//! `SESSION_AUTHENTICATION_FAILED` and changes nothing; a good change takes
//! effect for the next login while the session that made it (and another
//! one) keeps working; an empty new password is `CHANGE_PASSWORD_REJECTED`.

mod api_support;

use api_support::{Agent, PASSWORD, USER, call2, fail2, login};
use serde_json::json;

#[test]
fn change_password_keeps_sessions_and_checks_the_old_one() {
    let agent = Agent::start();
    let a = agent.http;
    let session = login(a);
    let other = login(a);

    assert_eq!(
        fail2(
            a,
            "session.change_password",
            json!([session, "wrong", "new pw"])
        ),
        [
            "SESSION_AUTHENTICATION_FAILED",
            USER,
            "Authentication failure"
        ]
    );
    assert_eq!(
        fail2(a, "session.change_password", json!([session, PASSWORD, ""]))[0],
        "CHANGE_PASSWORD_REJECTED"
    );
    assert_eq!(
        fail2(a, "session.change_password", json!([session, PASSWORD]))[0],
        "MESSAGE_PARAMETER_COUNT_MISMATCH"
    );
    assert_eq!(
        fail2(
            a,
            "session.change_password",
            json!(["OpaqueRef:nope", PASSWORD, "x"])
        ),
        ["SESSION_INVALID", "OpaqueRef:nope"]
    );
    // Nothing changed so far: the old password still logs in.
    login(a);

    call2(
        a,
        "session.change_password",
        json!([session, PASSWORD, "new pw"]),
    );
    // Both sessions keep working.
    call2(a, "VM.get_all", json!([session]));
    call2(a, "VM.get_all", json!([other]));
    // The next login needs the new password.
    assert_eq!(
        fail2(a, "session.login_with_password", json!([USER, PASSWORD]))[0],
        "SESSION_AUTHENTICATION_FAILED"
    );
    call2(a, "session.login_with_password", json!([USER, "new pw"]));
    // It is in the user file (survives a restart), and listed.
    let agent = agent.kill9_and_restart();
    call2(
        agent.http,
        "session.login_with_password",
        json!([USER, "new pw"]),
    );
    let methods = call2(agent.http, "system.listMethods", json!([]));
    assert!(
        methods
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "session.change_password"),
        "{methods}"
    );
}
