#!/usr/bin/env python3
"""Reference values for fleet-sigv4's known-answer test of the IoT Core presign.

An independent SigV4 implementation, botocore's `SigV4QueryAuth` (the signer of the AWS
CLI and boto3), presigns the URL the page presigns: `GET wss://{host}/mqtt`, service
`iotdevicegateway`, region eu-west-1, X-Amz-Expires=3600, at 2013-05-24T00:00:00Z, with
AWS's documented example key. crates/sigv4/tests/known_answer.rs hard-codes what this
prints; run it again after changing the inputs:

    "$(dirname "$FLEET_VENV")"/venv-moto/bin/python crates/sigv4/tests/reference.py

(moto's venv from scripts/setup.sh has botocore; any Python with botocore will do.)

The session token: botocore, like S3, puts X-Amz-Security-Token into the signed query. AWS
IoT does not: "do not include X-Amz-Security-Token in the canonical query string when
calculating the signature. Instead, append X-Amz-Security-Token as a query parameter after
the signature has been computed" (AWS IoT Developer Guide, "IAM users, groups, and roles";
the IoT Device SDKs' `omit_session_token`). So the reference for temporary credentials is
botocore's URL signed without the token, with the token appended; botocore's own URL with
the token signed in is printed too, to show that it is a different signature.
"""

import datetime
from urllib.parse import quote

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Not a real token: characters that must be percent-encoded, as in real STS tokens.
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE/token+with=padding"
REGION = "eu-west-1"
HOST = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
SIGNED_AT = datetime.datetime(2013, 5, 24, 0, 0, 0, tzinfo=datetime.timezone.utc)
EXPIRES = 3600


def fix_botocore_clock():
    """botocore signs at "now": make that 2013-05-24T00:00:00Z."""
    if hasattr(botocore.auth, "get_current_datetime"):
        botocore.auth.get_current_datetime = lambda: SIGNED_AT
    else:  # older botocore reads datetime.datetime.utcnow()

        class Fixed(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return SIGNED_AT.replace(tzinfo=None)

        class Module:
            datetime = Fixed

        botocore.auth.datetime = Module


def presign(token):
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, token)
    # https: botocore signs a URL; the page opens the same query on wss://.
    request = AWSRequest(method="GET", url=f"https://{HOST}/mqtt", headers={"host": HOST})
    botocore.auth.SigV4QueryAuth(credentials, "iotdevicegateway", REGION, expires=EXPIRES).add_auth(
        request
    )
    return "wss://" + request.url[len("https://") :]


def main():
    fix_botocore_clock()
    print("botocore", botocore.__version__)
    unsigned = presign(None)
    print("long-term keys:")
    print(unsigned)
    print("temporary credentials (IoT: the token appended after signing):")
    print(f"{unsigned}&X-Amz-Security-Token={quote(SESSION_TOKEN, safe='-_.~')}")
    print("temporary credentials as botocore signs them for S3 (token signed; not IoT's rule):")
    print(presign(SESSION_TOKEN))


if __name__ == "__main__":
    main()
