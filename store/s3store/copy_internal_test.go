package s3store

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ssmirror/ssmirror/store/memstore"
)

// TestCanCopyFromIdentity: what CanCopyFrom takes for one service and one principal, on clients
// that send nothing.
func TestCanCopyFromIdentity(t *testing.T) {
	keys := func(id, secret string) aws.CredentialsProvider {
		return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
		})
	}
	failing := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no credentials here")
	})
	client := func(endpoint, region string, creds aws.CredentialsProvider) *s3.Client {
		o := s3.Options{Region: region, Credentials: creds}
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		return s3.New(o)
	}
	const ep = "http://127.0.0.1:9000"
	base := client(ep, "us-east-1", keys("AK", "SK"))
	for _, tc := range []struct {
		name  string
		other *s3.Client
		want  bool
	}{
		{"SameClient", base, true},
		{"SameEverything", client(ep, "us-east-1", keys("AK", "SK")), true},
		{"EndpointSpelledOtherwise", client("HTTP://127.0.0.1:9000/", "us-east-1", keys("AK", "SK")), true},
		{"OtherPort", client("http://127.0.0.1:9001", "us-east-1", keys("AK", "SK")), false},
		{"OtherHost", client("http://127.0.0.2:9000", "us-east-1", keys("AK", "SK")), false},
		{"OtherScheme", client("https://127.0.0.1:9000", "us-east-1", keys("AK", "SK")), false},
		{"OtherRegion", client(ep, "eu-west-3", keys("AK", "SK")), false},
		{"OtherKey", client(ep, "us-east-1", keys("AK2", "SK")), false},
		{"OtherSecret", client(ep, "us-east-1", keys("AK", "SK2")), false},
		{"Anonymous", client(ep, "us-east-1", aws.AnonymousCredentials{}), false},
		{"NoCredentials", client(ep, "us-east-1", nil), false},
		{"CredentialsFail", client(ep, "us-east-1", failing), false},
		{"AWSAndAnEndpoint", client("", "us-east-1", keys("AK", "SK")), false},
	} {
		dst := New(base, "dst", "mirror", Options{})
		src := New(tc.other, "src", "", Options{})
		if got := dst.CanCopyFrom(src); got != tc.want {
			t.Errorf("%s: CanCopyFrom = %v, want %v", tc.name, got, tc.want)
		}
		if got := src.CanCopyFrom(dst); got != tc.want {
			t.Errorf("%s: the other way round, CanCopyFrom = %v, want %v", tc.name, got, tc.want)
		}
	}
	aws1 := New(client("", "eu-west-1", keys("AK", "SK")), "a", "", Options{})
	aws2 := New(client("", "eu-west-1", keys("AK", "SK")), "b", "", Options{})
	if !aws1.CanCopyFrom(aws2) {
		t.Error("two AWS clients of one region and one key: CanCopyFrom = false, want true")
	}
	if New(base, "dst", "", Options{}).CanCopyFrom(memstore.New()) {
		t.Error("CanCopyFrom(a memory store) = true")
	}
}
