package testserver

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// seaweedArgs is the command line of a SeaweedFS server for s on 127.0.0.1 only, keeping its
// data in dataDir: master, volume server, filer and S3 gateway in one process (weed server
// -s3), each on a free port, their gRPC ports too (by default SeaweedFS puts them 10000 above
// the HTTP ports, which may be taken or out of range), the Iceberg and Lance endpoints and the
// telemetry off, and s's keys as the one S3 identity (an S3 config file in dataDir). Volumes
// are small (64 MB) and many (2000 slots): each bucket has its own.
func seaweedArgs(s *Server, dataDir string) ([]string, error) {
	ports := make([]int, 7)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	// s.Endpoint's port (already chosen) is the S3 gateway's.
	_, s3port, _ := net.SplitHostPort(s.Host())
	conf := map[string]any{"identities": []any{map[string]any{
		"name":        "ssmirror-test",
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
	}}}
	data, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	confFile := filepath.Join(dataDir, "s3-identities.json")
	if err := os.WriteFile(confFile, data, 0o600); err != nil {
		return nil, err
	}
	itoa := strconv.Itoa
	return []string{"server",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + dataDir,
		"-master.port=" + itoa(ports[0]), "-master.port.grpc=" + itoa(ports[1]),
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64",
		"-volume.port=" + itoa(ports[2]), "-volume.port.grpc=" + itoa(ports[3]), "-volume.max=2000",
		"-filer", "-filer.port=" + itoa(ports[4]), "-filer.port.grpc=" + itoa(ports[5]),
		"-s3", "-s3.port=" + s3port, "-s3.port.grpc=" + itoa(ports[6]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false",
		"-s3.config=" + confFile,
	}, nil
}
