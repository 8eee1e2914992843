// Command ssmirror-lambda runs one ssmirror sync per invocation as an AWS Lambda function, for
// an EventBridge schedule. Everything is configured from the function's environment (see
// readConfig in handler.go and docs/operator-guide.md); the event may override the filters and
// ask for a dry run:
//
//	{"filters": ["arch=amd64", "release~^(jammy|noble)$"], "dry_run": true}
//
// With $SSMIRROR_CONFIG naming a file of [mirror NAME] sections, an invocation runs each of them
// (or those the event names: {"mirrors": ["stable"]}); see mirrors.go.
//
// Build it for the provided.al2023 runtime:
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./cmd/ssmirror-lambda
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(handle)
}
