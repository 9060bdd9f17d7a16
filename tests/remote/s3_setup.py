#!/usr/bin/env python3
"""Prepares moto's S3 server for kvik's S3 tests: an IAM user with an access key allowed
everything, a bucket, the files of a directory uploaded as objects (plus copies under keys with
characters that need percent-encoding), and presigned GET URLs. Then turns moto's request
authentication on, so every later request must carry a valid SigV4 signature.

usage: s3_setup.py ENDPOINT BUCKET DIR
prints lines "access_key ID", "secret_key SECRET", then "presigned KEY<TAB>URL" per object
"""
import json
import os
import sys
import urllib.request

import boto3
import moto
from botocore.config import Config

endpoint, bucket, root = sys.argv[1:4]
anon = dict(endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **anon)
iam.create_user(UserName="kvik")
key = iam.create_access_key(UserName="kvik")["AccessKey"]
iam.put_user_policy(UserName="kvik", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"],
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
s3.create_bucket(Bucket=bucket)
keys = []
for name in sorted(os.listdir(root)):
    with open(os.path.join(root, name), "rb") as f:
        data = f.read()
    for k in (name, "dir/a b+c=d&e;f@g(h)!'*,$:" + name):
        s3.put_object(Bucket=bucket, Key=k, Body=data)
        keys.append(k)
presigned = {k: s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k},
                                          ExpiresIn=3600) for k in keys}
req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                             headers={"Content-Type": "text/plain"})
urllib.request.urlopen(req).read()
print("access_key", key["AccessKeyId"])
print("moto_version", moto.__version__)
print("secret_key", key["SecretAccessKey"])
for k, url in presigned.items():
    print("presigned %s\t%s" % (k, url))
