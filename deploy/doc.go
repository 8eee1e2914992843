// Package deploy holds no code: it is where the packaging lives (Dockerfile, systemd units,
// Kubernetes manifests, example configs), and its tests check those files.
package deploy
