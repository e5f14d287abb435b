"""Sign-up, sign-in (password or emailed link), sign-out, the current caller, password changes, and
admins' invitations. Signing in sets the `magnet_session` cookie (HttpOnly) and the `magnet_csrf`
cookie, whose value every write made with the session sends back in the X-CSRF-Token header."""
from datetime import timedelta

from flask import after_this_request, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.auth.schemas import (
    InvitationCreateSchema,
    InvitationSchema,
    LoginSchema,
    MagicLinkSchema,
    MeSchema,
    PasswordChangedSchema,
    PasswordChangeSchema,
    SignedInSchema,
    SignupSchema,
)
from app.api.common import MessageSchema, envelope, ok
from app.auth import (
    OPEN,
    clear_session_cookies,
    current_principal,
    requires,
    set_session_cookies,
)
from app.errors import Conflict
from app.services import sessions, users
from app.services.sessions import SignedIn

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Users: sign-up, sign-in and sessions")


def _client() -> dict:
    return {"ip": request.remote_addr, "user_agent": request.headers.get("User-Agent")}


def _signed_in(signed: SignedIn) -> dict:
    token, csrf = signed.token, signed.session.csrf_token

    @after_this_request
    def _cookies(response):
        set_session_cookies(response, token, csrf)
        return response

    return ok({"user": signed.user, "csrf_token": csrf})


def _signed_in_user():
    principal = current_principal()
    if principal is None or principal.user_id is None:
        raise Conflict("This needs a signed-in user; an API key has no account.", code="not_a_user")
    return principal, users.get_user(principal.user_id)


@blp.route("/signup")
class Signup(MethodView):
    @requires(OPEN)
    @blp.arguments(SignupSchema)
    @blp.response(201, envelope(SignedInSchema))
    @blp.alt_response(403, description="Sign-ups are closed, or the invitation is used, expired or unknown")
    @blp.alt_response(409, description="An account with this email exists")
    def post(self, body):
        """Sign up and sign in: the first user becomes admin; later ones need an invitation or open sign-ups"""
        return _signed_in(users.signup(body["email"], body["password"], body["name"],
                                       invitation=body.get("invitation"), **_client()))


@blp.route("/login")
class Login(MethodView):
    @requires(OPEN)
    @blp.arguments(LoginSchema)
    @blp.response(200, envelope(SignedInSchema))
    @blp.alt_response(401, description="The email or password is not correct (the same answer for both)")
    @blp.alt_response(429, description="Too many failed sign-ins for this account or address (Retry-After)")
    def post(self, body):
        """Sign in with email and password: a new session cookie (and CSRF cookie)"""
        return _signed_in(users.login(body["email"], body["password"], **_client()))


@blp.route("/magic-link")
class MagicLink(MethodView):
    @requires(OPEN)
    @blp.arguments(MagicLinkSchema)
    @blp.response(202, MessageSchema)
    def post(self, body):
        """Email a one-time sign-in link; the answer is the same whether or not the address has an account"""
        from app.services import magic_links

        magic_links.request_link(body["email"])
        return {"success": True, "message": "If this address has an account, a sign-in link is on its way."}


@blp.route("/logout")
class Logout(MethodView):
    @requires("viewer")
    @blp.response(200, MessageSchema)
    def post(self):
        """Sign out: the session ends on the server (the cookie stops working everywhere) and is cleared"""
        principal = current_principal()
        if principal.session_id:
            sessions.end_session(principal.session_id)
        g.signed_out = True

        @after_this_request
        def _clear(response):
            clear_session_cookies(response)
            return response

        return {"success": True, "message": "Signed out"}


@blp.route("/me")
class Me(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(MeSchema))
    def get(self):
        """Who this request acts for: the signed-in user (with the CSRF token) or the API key"""
        principal = current_principal()
        user = users.get_user(principal.user_id) if principal.user_id else None
        return ok({"kind": "user" if user else "api_key", "role": principal.role,
                   "display_name": principal.display_name, "user": user, "api_key_id": principal.api_key_id,
                   "csrf_token": principal.csrf_token})


@blp.route("/password")
class Password(MethodView):
    @requires("viewer")
    @blp.arguments(PasswordChangeSchema)
    @blp.response(200, envelope(PasswordChangedSchema))
    @blp.alt_response(403, description="The current password is not correct")
    @blp.alt_response(409, description="The caller is an API key, which has no password")
    def put(self, body):
        """Change your password (the current one required); your other sessions end"""
        principal, user = _signed_in_user()
        ended = users.change_password(user, body["current_password"], body["new_password"],
                                      keep_session=principal.session_id)
        return ok({"sessions_ended": ended})


@blp.route("/invitations")
class Invitations(MethodView):
    @requires("admin")
    @blp.arguments(InvitationCreateSchema)
    @blp.response(201, envelope(InvitationSchema))
    def post(self, body):
        """Invite someone to sign up with a role: a single-use, expiring token (shown once) and its link"""
        settings = current_app.extensions["magnet.config"].auth
        invite, token = users.create_invitation(role=body["role"], email=body.get("email"),
                                                created_by=current_principal().user_id,
                                                ttl=timedelta(hours=settings.invitation_ttl_hours))
        return ok({"id": invite.id, "role": invite.role, "email": invite.email, "expires_at": invite.expires_at,
                   "token": token, "signup_url": f"{settings.public_url}/signup?invitation={token}"})
