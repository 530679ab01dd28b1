#!/bin/bash
# LocalStack ready hook (/etc/localstack/init/ready.d): the curriculum bucket, the events queue (with a
# dead-letter queue) and the bucket notification ObjectCreated(*.pdf, *.PDF: S3 suffix filters are
# case-sensitive) -> SQS. Safe to run again. Queue URLs are path style (SQS_ENDPOINT_STRATEGY=path in
# localstack/compose.yml): http://127.0.0.1:4566/000000000000/<queue>, no public DNS needed.
#   S3_BUCKET          bucket academics drop PDFs into          (default: curriculum, as the settings)
#   EVENTS_QUEUE_NAME  queue the notifications land in          (default: curriculum-events)
set -euo pipefail

BUCKET="${S3_BUCKET:-curriculum}"
QUEUE="${EVENTS_QUEUE_NAME:-curriculum-events}"

if ! awslocal s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
    awslocal s3api create-bucket --bucket "$BUCKET" >/dev/null
fi

DLQ_URL=$(awslocal sqs create-queue --queue-name "$QUEUE-dlq" --query QueueUrl --output text)
DLQ_ARN=$(awslocal sqs get-queue-attributes --queue-url "$DLQ_URL" --attribute-names QueueArn \
    --query Attributes.QueueArn --output text)
# Long polling for the forwarder; a message that fails 5 times goes to the dead-letter queue.
QUEUE_URL=$(awslocal sqs create-queue --queue-name "$QUEUE" --query QueueUrl --output text \
    --attributes "{\"VisibilityTimeout\":\"120\",\"ReceiveMessageWaitTimeSeconds\":\"20\",\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$DLQ_ARN\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}\"}")
QUEUE_ARN=$(awslocal sqs get-queue-attributes --queue-url "$QUEUE_URL" --attribute-names QueueArn \
    --query Attributes.QueueArn --output text)

# What AWS would require for S3 to publish to the queue (LocalStack does not enforce it).
POLICY="{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"s3.amazonaws.com\"},\"Action\":\"sqs:SendMessage\",\"Resource\":\"$QUEUE_ARN\",\"Condition\":{\"ArnLike\":{\"aws:SourceArn\":\"arn:aws:s3:::$BUCKET\"}}}]}"
awslocal sqs set-queue-attributes --queue-url "$QUEUE_URL" \
    --attributes "{\"Policy\":$(printf '%s' "$POLICY" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}"

awslocal s3api put-bucket-notification-configuration --bucket "$BUCKET" --notification-configuration \
    "{\"QueueConfigurations\":[{\"Id\":\"pdf-to-queue\",\"QueueArn\":\"$QUEUE_ARN\",\"Events\":[\"s3:ObjectCreated:*\"],\"Filter\":{\"Key\":{\"FilterRules\":[{\"Name\":\"suffix\",\"Value\":\".pdf\"}]}}},{\"Id\":\"upper-pdf-to-queue\",\"QueueArn\":\"$QUEUE_ARN\",\"Events\":[\"s3:ObjectCreated:*\"],\"Filter\":{\"Key\":{\"FilterRules\":[{\"Name\":\"suffix\",\"Value\":\".PDF\"}]}}}]}"

echo "aiteacher: s3://$BUCKET ObjectCreated(*.pdf) -> $QUEUE_URL (dead letters: $DLQ_URL)"
