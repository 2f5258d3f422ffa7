// Package deploy holds what installs Shoal outside Go: the container image
// (Dockerfile), the systemd unit and its environment file, and example
// configurations for a three-site fleet. It has no code; its tests check
// those files: the image's build command makes a static binary that runs as
// a non-root user, the unit passes systemd-analyze, and every example
// configures flags the binary has. The Helm chart (helm/shoal) is tested by
// deploy/k8stest.
package deploy
