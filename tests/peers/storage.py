#!/usr/bin/env python3
"""Reads the test buckets back with each provider's own client, for tests/storage.rs.

  storage.py s3 ENDPOINT create BUCKET [REGION]
  storage.py s3 ENDPOINT list BUCKET              -> JSON {key: size}
  storage.py s3 ENDPOINT get BUCKET KEY OUT
  storage.py azure ENDPOINT create CONTAINER      (ENDPOINT: http://host:port/devstoreaccount1)
  storage.py azure ENDPOINT list CONTAINER
  storage.py azure ENDPOINT get CONTAINER KEY OUT
  storage.py gcs ENDPOINT create BUCKET           (ENDPOINT: http://host:port)
  storage.py gcs ENDPOINT list BUCKET
  storage.py gcs ENDPOINT get BUCKET KEY OUT

S3 through boto3, Azure through azure-storage-blob (Azurite's well-known account),
GCS through its JSON API (the emulator takes no credentials). A missing key exits 4.
"""
import json
import sys
import urllib.parse
import urllib.request

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def s3(endpoint, op, args):
    import boto3
    import botocore
    c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test")
    if op == "create":
        if len(args) > 1 and args[1] != "us-east-1":
            c.create_bucket(Bucket=args[0], CreateBucketConfiguration={"LocationConstraint": args[1]})
        else:
            c.create_bucket(Bucket=args[0])
    elif op == "list":
        out = {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=args[0]):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        print(json.dumps(out))
    elif op == "get":
        try:
            c.download_file(args[0], args[1], args[2])
            head = c.head_object(Bucket=args[0], Key=args[1])
            print(json.dumps({"content_type": head.get("ContentType", "")}))
        except botocore.exceptions.ClientError:
            sys.exit(4)


def azure(endpoint, op, args):
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient
    svc = BlobServiceClient(account_url=endpoint, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    cont = svc.get_container_client(args[0])
    if op == "create":
        cont.create_container()
    elif op == "list":
        print(json.dumps({b.name: b.size for b in cont.list_blobs()}))
    elif op == "get":
        try:
            blob = cont.get_blob_client(args[1])
            with open(args[2], "wb") as f:
                f.write(blob.download_blob().readall())
            print(json.dumps({"content_type": blob.get_blob_properties().content_settings.content_type}))
        except ResourceNotFoundError:
            sys.exit(4)


def gcs(endpoint, op, args):
    def call(method, url, body=None):
        req = urllib.request.Request(url, method=method, data=body, headers={"Content-Type": "application/json"})
        return urllib.request.urlopen(req)
    if op == "create":
        call("POST", f"{endpoint}/storage/v1/b?project=test", json.dumps({"name": args[0]}).encode())
    elif op == "list":
        out, token = {}, None
        while True:
            url = f"{endpoint}/storage/v1/b/{args[0]}/o" + (f"?pageToken={token}" if token else "")
            page = json.load(call("GET", url))
            for o in page.get("items", []):
                out[o["name"]] = int(o["size"])
            token = page.get("nextPageToken")
            if not token:
                break
        print(json.dumps(out))
    elif op == "get":
        key = urllib.parse.quote(args[1], safe="")
        try:
            meta = json.load(call("GET", f"{endpoint}/storage/v1/b/{args[0]}/o/{key}"))
            with call("GET", f"{endpoint}/download/storage/v1/b/{args[0]}/o/{key}?alt=media") as r, open(args[2], "wb") as f:
                f.write(r.read())
            print(json.dumps({"content_type": meta.get("contentType", "")}))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                sys.exit(4)
            raise


if __name__ == "__main__":
    provider, endpoint, op, *rest = sys.argv[1:]
    {"s3": s3, "azure": azure, "gcs": gcs}[provider](endpoint, op, rest)
