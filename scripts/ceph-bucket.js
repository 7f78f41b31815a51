#!/usr/bin/env node
// scripts/ceph's S3 probe: `create` makes the bucket named by CHRONOVOL_S3_BUCKET (once), `check`
// exits 0 when the gateway answers for it with the credentials in the environment.
'use strict';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { S3Client, CreateBucketCommand, HeadBucketCommand } = require('@aws-sdk/client-s3');

const client = new S3Client({
  region: process.env.AWS_REGION ?? 'us-east-1',
  endpoint: process.env.CHRONOVOL_S3_ENDPOINT,
  forcePathStyle: true,
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 2000, socketTimeout: 10000 },
});
const Bucket = process.env.CHRONOVOL_S3_BUCKET;
(async () => {
  if (process.argv[2] === 'create') {
    try {
      await client.send(new CreateBucketCommand({ Bucket }));
    } catch (err) {
      if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
    }
  }
  await client.send(new HeadBucketCommand({ Bucket }));
})().then(
  () => process.exit(0),
  (err) => {
    console.error(`ceph-bucket: ${err.name}: ${err.message}`);
    process.exit(1);
  },
);
