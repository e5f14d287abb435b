"""`magnet users create` for operators without a browser: the user can sign in; nothing secret printed."""
from app.cli import main
from tests.app.users_support import login


def test_users_create_with_a_password_from_stdin_then_sign_in(app):
    runner = app.test_cli_runner()
    secret = "a long cli password"
    result = runner.invoke(main, ["users", "create", "--email", "Ops@Example.com", "--role", "employee",
                                  "--password-stdin"], input=secret + "\n")
    assert result.exit_code == 0, result.output
    assert "role=operator" in result.output and secret not in result.output
    res = login(app.test_client(), "ops@example.com", secret)
    assert res.status_code == 200 and res.json["data"]["user"]["role"] == "operator"
    again = runner.invoke(main, ["users", "create", "--email", "ops@example.com", "--role", "admin",
                                 "--no-password"])
    assert again.exit_code != 0 and "already exists" in again.output
    weak = runner.invoke(main, ["users", "create", "--email", "w@example.com", "--role", "admin",
                                "--password-stdin"], input="short\n")
    assert weak.exit_code != 0 and "at least 10" in weak.output
    listing = runner.invoke(main, ["users", "list"])
    assert "ops@example.com" in listing.output and "w@example.com" not in listing.output


def test_users_create_prompts_for_a_hidden_password(app):
    result = app.test_cli_runner().invoke(main, ["users", "create", "--email", "a@example.com", "--role", "admin"],
                                          input="prompted password\nprompted password\n")
    assert result.exit_code == 0, result.output
    assert "prompted password" not in result.output
    assert login(app.test_client(), "a@example.com", "prompted password").status_code == 200


def test_set_password_ends_sessions(app):
    runner = app.test_cli_runner()
    runner.invoke(main, ["users", "create", "--email", "a@example.com", "--role", "admin", "--no-password"])
    assert login(app.test_client(), "a@example.com", "anything at all").status_code == 401
    result = runner.invoke(main, ["users", "set-password", "--email", "a@example.com", "--password-stdin"],
                           input="the new password\n")
    assert result.exit_code == 0 and "the new password" not in result.output
    assert login(app.test_client(), "a@example.com", "the new password").status_code == 200
