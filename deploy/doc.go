// Package deploy holds what installs Shoal outside Go: the container image
// (Dockerfile), the systemd unit and its environment file (with a drop-in
// and environment lines for client HTTPS and HTTP/3), and example
// configurations for a three-site fleet. It has no code; its tests check
// those files: the image's build command makes a static binary that runs as
// a non-root user, the unit (with and without the HTTPS drop-in) passes
// systemd-analyze, an edge configured as the HTTPS example says serves
// HTTPS and HTTP/3, and every example
// configures flags the binary has. The Helm chart (helm/shoal) is tested by
// deploy/k8stest.
package deploy
