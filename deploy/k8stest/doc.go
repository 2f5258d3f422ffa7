// Package k8stest tests the Helm chart in helm/shoal. It has no code of its
// own, only tests:
//
//   - helm lint --strict and helm template for every documented combination
//     of values (helm/shoal/ci/*-values.yaml), with the Kubernetes version
//     pinned;
//   - every rendered object decoded strictly into the Kubernetes API types
//     (an unknown or misspelled field fails), and the chart's own invariants:
//     selectors match pods, named ports and volumes exist, each edge finds
//     itself in --peers or joins gossip through the headless peers Service
//     at a port it and the Service carry, the pods are hardened;
//   - values.schema.json rejects misspelled keys;
//   - the rendered commands run for real: the edge and origin arguments with
//     the shoal binary (with the generated certificates, mounted the way the
//     pod mounts them), two rendered DaemonSet pods on two loopback
//     addresses joined by gossip, and the zone init script against a fake
//     API server;
//   - `shoal check` as the chart runs it: the `helm test` pod and the check
//     init container have exactly the edge's flags, environment and
//     configuration volumes, and their commands run against a rendered
//     edge;
//   - helm install into a real kube-apiserver and etcd started by the test
//     (the test hook pod in a server-side dry run).
//
// Tools: helm ($SHOAL_HELM, else helm on $PATH, else the CI cache), and
// kube-apiserver and etcd in $KUBEBUILDER_ASSETS. A test whose tool is
// missing skips, except under CI=true, where it fails. .ci/run installs them.
package k8stest
