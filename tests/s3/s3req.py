#!/usr/bin/env python3
"""One SigV4-signed S3 request (path-style), for the test scripts: no AWS CLI needed.

usage: s3req.py METHOD /BUCKET[/KEY] [BODY]
Reads AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
Exits 0 on 2xx (and on 409 for a PUT of a bucket: it exists), else 1; prints the response body.
"""
import datetime, hashlib, hmac, http.client, os, sys, urllib.parse


def main():
    method, path = sys.argv[1], sys.argv[2]
    body = sys.argv[3].encode() if len(sys.argv) > 3 else b""
    url = urllib.parse.urlparse(os.environ["AWS_ENDPOINT_URL"])
    region = os.environ.get("AWS_REGION", "us-east-1")
    access, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": url.netloc, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, urllib.parse.quote(path), "",
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload])
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    sys.stdout.write(resp.read().decode(errors="replace"))
    ok = 200 <= resp.status < 300 or (method == "PUT" and path.count("/") == 1 and resp.status == 409)
    sys.exit(0 if ok else 1)


main()
