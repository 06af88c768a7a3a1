// Package cfnvalidate holds the validator of the CloudFormation templates
// deploybot setup --output cloudformation writes (validate.js, run by this
// package's test against the AWS CDK's service spec database, which is
// generated from the CloudFormation registry schemas). The Python
// cfn-lint is not what CI can install here; see docs/aws.md.
package cfnvalidate
