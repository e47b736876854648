"""Runs the report side of contrib/python/wxtoken_reader.py for tests/readers.rs.

    python3 report.py helper TOKEN TOKEN_FILE
        report_stale(TOKEN, TOKEN_FILE); prints True or False.
    python3 report.py snippet CODE_FILE TOKEN_FILE [NEWER_FILE]
        as tests/readers/report.php: runs the python-report block of contrib/README.md.
"""

import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "contrib", "python"))
from wxtoken_reader import access_token, report_stale  # noqa: E402

if sys.argv[1] == "helper":
    sys.stdout.write(repr(report_stale(sys.argv[2], sys.argv[3])))
    sys.exit(0)

with open(sys.argv[2]) as f:
    code = f.read()
FILE = sys.argv[3]
newer = sys.argv[4:5]
first = access_token(FILE)
calls = []


def wechat_api(token):
    calls.append(token)
    if token == first:
        if newer:
            os.rename(newer.pop(), FILE)
        return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
    return {"openid": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"}


scope = {"access_token": access_token, "report_stale": report_stale, "wechat_api": wechat_api, "FILE": FILE}
exec(code, scope)
for c in calls:
    print(c)
print("res=" + json.dumps(scope["res"]))
