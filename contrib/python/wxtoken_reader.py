"""Read the access token (or a JS-SDK ticket) that wxtoken keeps fresh. Standard library only,
Python 3.5+.

    from wxtoken_reader import access_token
    token = access_token()                      # /var/lib/wxtoken/access_token.json

    $ python3 wxtoken_reader.py [--min-remaining SECONDS] [--field ticket] [PATH]

Never calls WeChat: fetching is wxtoken's job alone (an app fetching on its own invalidates or races
the token every other app uses). A missing, unreadable, garbled or expired file raises
WxtokenError (a RuntimeError) saying which; the command line prints that and exits 1.

Nothing is cached: the file is small and replaced atomically, so read it for each use.

When WeChat rejects the token (errcode 40001, 42001 or 40014), tell wxtoken with
report_stale(token): it checks the token and replaces it within seconds.
"""

import hashlib
import json
import os
import re
import sys
import time

DEFAULT_PATH = "/var/lib/wxtoken/access_token.json"
DEFAULT_TICKET_PATH = "/var/lib/wxtoken/jsapi_ticket.json"

_VALUE = re.compile(r"\A[A-Za-z0-9\-_.~+/=]{1,1024}\Z")


class WxtokenError(RuntimeError):
    """The file cannot give a usable token (missing, unreadable, garbled or expired)."""


def read_json(path=DEFAULT_PATH):
    """The decoded file as a dict (all fields), after checking it can be read and parsed."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise WxtokenError(
            "wxtoken: {} does not exist - is wxtoken installed and has it run? "
            "(`systemctl status wxtoken.timer`, `journalctl -u wxtoken`; is the path its --out?)".format(path)
        ) from None
    except OSError as e:
        raise WxtokenError(
            "wxtoken: cannot read {} ({}) - the files are mode 0640: add the user this runs as "
            "to their group (see wxtoken --group)".format(path, e.strerror or e)
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WxtokenError(
            "wxtoken: {} is not valid JSON ({}; {} bytes) - garbled, or not written by wxtoken".format(
                path, e, len(raw)
            )
        ) from None
    if not isinstance(data, dict):
        raise WxtokenError("wxtoken: {} is not a JSON object - not written by wxtoken".format(path))
    return data


def _checked(data, field, path, min_remaining):
    value = data.get(field)
    if not isinstance(value, str) or not _VALUE.match(value):
        raise WxtokenError(
            'wxtoken: {} has no valid "{}" (garbled, or not written by wxtoken)'.format(path, field)
        )
    expires_at = data.get("expires_at")
    if not isinstance(expires_at, int) or isinstance(expires_at, bool):
        raise WxtokenError(
            'wxtoken: {} has no integer "expires_at" (garbled, or not written by wxtoken)'.format(path)
        )
    left = expires_at - int(time.time())
    if left <= 0:
        raise WxtokenError(
            "wxtoken: the {} in {} expired {} s ago; wxtoken has not refreshed it - check "
            "`systemctl status wxtoken.timer` and `journalctl -u wxtoken`".format(field, path, -left)
        )
    if left < min_remaining:
        raise WxtokenError(
            "wxtoken: the {} in {} is valid for {} s more, fewer than the {} s asked for; wxtoken "
            "refreshes it before expiry - check `journalctl -u wxtoken`".format(field, path, left, min_remaining)
        )
    return value


def access_token(path=DEFAULT_PATH, min_remaining=0):
    """The access token from wxtoken's JSON file; WxtokenError unless valid for min_remaining more s."""
    return _checked(read_json(path), "access_token", path, min_remaining)


def ticket(path=DEFAULT_TICKET_PATH, min_remaining=0):
    """A JS-SDK ticket from TYPE_ticket.json (written by `wxtoken refresh --ticket TYPE`)."""
    return _checked(read_json(path), "ticket", path, min_remaining)


def report_stale(token, path=DEFAULT_PATH):
    """Tell wxtoken that WeChat rejected `token` (errcode 40001, 42001 or 40014), so that it checks
    the token and replaces it within seconds instead of at its expiry ("passive refresh"). Then
    read the token again once: when it differs, retry the call with it.

    Creates an empty file named after the token's SHA-256 (hex) in requests/ beside the token file
    `path`, which wxtoken creates (mode 01730: the files' group may add a request, not list or
    delete them); systemd's wxtoken.path starts a run when one appears. No subprocess, no network,
    no waiting; safe to repeat from every worker (wxtoken acts only when the digest names the
    token its file holds now, asks WeChat before fetching, and rate-limits).

    Returns True when the report is filed (or one for this token already was), False when it
    cannot be: no requests/ directory (wxtoken has not run yet, or is too old to take reports) or
    no permission (this user is not in the files' group). Never raises for those.
    """
    if isinstance(token, str):
        token = token.encode("utf-8")
    if not isinstance(token, bytes) or not token:
        return False
    request = os.path.join(os.path.dirname(path), "requests", hashlib.sha256(token).hexdigest())
    # O_EXCL: never opens an existing file, nor follows a symlink planted under that name.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        os.close(os.open(request, flags, 0o600))
    except FileExistsError:
        return True  # another worker reported this token already
    except OSError:
        return False
    return True


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Print the token wxtoken keeps fresh (never calls WeChat).")
    p.add_argument("path", nargs="?", default=DEFAULT_PATH)
    p.add_argument("--min-remaining", type=int, default=0, metavar="SECONDS")
    p.add_argument("--field", choices=["access_token", "ticket"], default=None,
                   help="default: ticket for *_ticket.json, else access_token")
    args = p.parse_args(argv)
    field = args.field or ("ticket" if os.path.basename(args.path).endswith("_ticket.json") else "access_token")
    try:
        value = _checked(read_json(args.path), field, args.path, args.min_remaining)
    except WxtokenError as e:
        print(e, file=sys.stderr)
        return 1
    sys.stdout.write(value + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
