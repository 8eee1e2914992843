// Package targettest runs a test against every kind of target ssmirror publishes into: memory, a
// directory, and a bucket on each S3 server internal/testserver starts (MinIO, versitygw,
// SeaweedFS).
//
//	targettest.Run(t, targettest.All, targettest.Options{}, func(t *testing.T, tg *targettest.Target) {
//		rep, err := sync.Run(ctx, src, tg.Store, opts)
//		...
//	})
//
// Every target is new and empty. S3 targets get a bucket of their own on the package's shared
// server (or on a server of their own with Options.OwnServer) and a client that signs with the
// server's keys given explicitly: nothing is set in the process's environment (no t.Setenv), so
// subtests may run in parallel (Options.Parallel).
package targettest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// Kind is a kind of target.
type Kind string

// The kinds of target.
const (
	Memory    Kind = "memory"
	Directory Kind = "directory"
	MinIO          = Kind(testserver.KindMinIO)
	VersityGW      = Kind(testserver.KindVersityGW)
	SeaweedFS      = Kind(testserver.KindSeaweedFS)
)

// Kind lists.
var (
	// All is every kind.
	All = []Kind{Memory, Directory, MinIO, VersityGW, SeaweedFS}
	// Durable is every kind the binary can name on its command line (all but memory).
	Durable = []Kind{Directory, MinIO, VersityGW, SeaweedFS}
	// S3 is the S3 servers.
	S3 = []Kind{MinIO, VersityGW, SeaweedFS}
)

// IsS3 tells whether the kind is an S3 server.
func (k Kind) IsS3() bool { return k == MinIO || k == VersityGW || k == SeaweedFS }

// Target is a new, empty target of one kind.
type Target struct {
	Kind  Kind
	Store store.Target
	// Location is what ssmirror's command line names: the directory, or s3://bucket/prefix
	// (without the trailing slash). Empty for memory.
	Location string
	// Dir is the directory of a Directory target.
	Dir string

	// S3 targets only.
	Server *testserver.Server
	Client *s3.Client      // signs with Server's keys; built by s3store.NewClient
	Bucket string          // the target's own bucket
	Prefix string          // the mirror's key prefix in Bucket ("mirror/" unless Options.Prefix)
	S3     s3store.Options // what Store and Client were built with
}

// Options shape the targets New and Run make.
type Options struct {
	// OwnServer starts an S3 server for the test alone (testserver.MinIO, VersityGW) instead of
	// using the package's shared one.
	OwnServer bool
	// Prefix is the mirror's key prefix in an S3 bucket; empty: "mirror/".
	Prefix string
	// S3 is the s3store options; Endpoint and Region are set to the server's.
	S3 s3store.Options
	// Parallel makes Run's and Each's subtests parallel (t.Parallel). Only for tests that
	// change nothing process-wide (no t.Setenv, no package variables).
	Parallel bool
}

// Each runs fn in a subtest per kind, named after the kind, for tests that build the target
// themselves.
func Each(t *testing.T, kinds []Kind, opts Options, fn func(t *testing.T, kind Kind)) {
	t.Helper()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			if opts.Parallel {
				t.Parallel()
			}
			fn(t, kind)
		})
	}
}

// Run runs fn in a subtest per kind, named after the kind, with a new target of that kind.
func Run(t *testing.T, kinds []Kind, opts Options, fn func(t *testing.T, tg *Target)) {
	t.Helper()
	Each(t, kinds, opts, func(t *testing.T, kind Kind) { fn(t, New(t, kind, opts)) })
}

// New makes a new, empty target of the kind for t.
func New(t testing.TB, kind Kind, opts Options) *Target {
	t.Helper()
	tg := &Target{Kind: kind}
	switch kind {
	case Memory:
		tg.Store = memstore.New()
	case Directory:
		tg.Dir = t.TempDir()
		dst, err := dirstore.New(tg.Dir, dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tg.Store, tg.Location = dst, tg.Dir
	case MinIO, VersityGW, SeaweedFS:
		var srv *testserver.Server
		switch {
		case !opts.OwnServer:
			srv = testserver.Shared(t, testserver.Kind(kind))
		case kind == MinIO:
			srv = testserver.MinIO(t)
		case kind == VersityGW:
			srv = testserver.VersityGW(t)
		default:
			srv = testserver.SeaweedFS(t)
		}
		tg.Server = srv
		tg.S3 = opts.S3
		tg.Client = Client(t, srv, &tg.S3)
		tg.Bucket = srv.NewBucket(t, t.Name())
		tg.Prefix = opts.Prefix
		if tg.Prefix == "" {
			tg.Prefix = "mirror/"
		}
		tg.Store = s3store.New(tg.Client, tg.Bucket, tg.Prefix, tg.S3)
		tg.Location = "s3://" + tg.Bucket + "/" + tg.Prefix[:len(tg.Prefix)-1]
	default:
		t.Fatalf("targettest: unknown kind %q", kind)
	}
	return tg
}

// Client is an S3 client for the server built the way the command builds one (s3store.NewClient
// with opts, whose Endpoint and Region default to the server's; a test may name a proxy in
// front of it), except that it signs with the server's keys given explicitly rather than found
// in the environment.
func Client(t testing.TB, srv *testserver.Server, opts *s3store.Options) *s3.Client {
	t.Helper()
	if opts.Endpoint == "" {
		opts.Endpoint = srv.Endpoint
	}
	if opts.Region == "" {
		opts.Region = srv.Region
	}
	client, err := s3store.NewClient(context.Background(), *opts)
	if err != nil {
		t.Fatalf("S3 client for %s %s: %v", srv.Kind, srv.Endpoint, err)
	}
	creds := aws.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, Source: "targettest"}
	return s3.New(client.Options(), func(o *s3.Options) {
		o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })
	})
}
