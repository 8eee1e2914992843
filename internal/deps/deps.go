package deps
import (
	_ "github.com/aws/aws-sdk-go-v2/aws"
	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/aws/aws-sdk-go-v2/credentials"
	_ "github.com/aws/smithy-go"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/ProtonMail/go-crypto/openpgp"
	_ "github.com/spf13/pflag"
	_ "golang.org/x/term"
	_ "golang.org/x/sync/errgroup"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/rogpeppe/go-internal/testscript"
)

