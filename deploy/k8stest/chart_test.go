package k8stest

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	release   = "shoal"
	namespace = "cdn"
)

// render runs helm template on the chart with args (values) and decodes the
// result strictly.
func render(t testing.TB, args ...string) manifest {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", release, chartDir(t),
		"--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	m := decodeManifest(t, out)
	if len(m) == 0 {
		t.Fatalf("helm template %v rendered nothing", args)
	}
	return m
}

func TestLint(t *testing.T) {
	t.Parallel()
	for name, file := range ciValues(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := runHelm(t, "lint", "--strict", "--kube-version", kubeVersion, chartDir(t), "-f", file)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestRender renders every documented combination of values, decodes every
// object strictly into the API types, and checks the chart's invariants.
func TestRender(t *testing.T) {
	t.Parallel()
	for name, file := range ciValues(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := render(t, "-f", file)
			checkManifest(t, m)
			checkCombination(t, name, m)
		})
	}
	// The oldest Kubernetes the chart claims (Chart.yaml kubeVersion).
	t.Run("everything-kube-1.29", func(t *testing.T) {
		t.Parallel()
		out, err := runHelm(t, "template", release, chartDir(t), "-n", namespace, "--kube-version", "1.29.0",
			"-f", ciValues(t)["everything"])
		if err != nil {
			t.Fatal(err)
		}
		checkManifest(t, decodeManifest(t, out))
		if _, err := runHelm(t, "template", release, chartDir(t), "--kube-version", "1.28.9", "-f", ciValues(t)["everything"]); err == nil {
			t.Errorf("Kubernetes 1.28 accepted; Chart.yaml says >=1.29")
		}
	})
}

// checkCombination checks what each documented combination is for.
func checkCombination(t *testing.T, name string, m manifest) {
	p, edge := m.edge(t)
	f := flags(edge)
	has := func(kind, name string) bool { return m.get(kind, name) != nil }
	spec := &p.Template.Spec
	switch name {
	case "statefulset":
		if p.Owner.Kind != "StatefulSet" || len(p.Claims) != 1 || f["data-dir"] != "/var/lib/shoal" || f["disk-cache"] != "16384MiB" {
			t.Errorf("StatefulSet with a 20Gi claim: got %s, %d claims, --data-dir %q, --disk-cache %q", p.Owner.Kind, len(p.Claims), f["data-dir"], f["disk-cache"])
		}
		if !has("Secret", "shoal-tls") || !has("Secret", "shoal-admin-token") || has("Deployment", "shoal-origin") {
			t.Errorf("want the generated TLS and token Secrets and no origin")
		}
		// Gossip is the default for a StatefulSet too, with a generated key.
		if f["join"] != "shoal-peers.cdn.svc.cluster.local:7946" || f["gossip-key-file"] != "/etc/shoal/gossip/gossip.key" || !has("Secret", "shoal-gossip-key") {
			t.Errorf("want gossip through the peers Service with the generated key: --join=%q --gossip-key-file=%q", f["join"], f["gossip-key-file"])
		}
		if _, ok := f["peer-upload-limit"]; ok {
			t.Errorf("--peer-upload-limit rendered by default")
		}
		if !has("PodDisruptionBudget", "shoal-edge") {
			t.Errorf("no PodDisruptionBudget")
		}
		if len(spec.TopologySpreadConstraints) != 2 {
			t.Errorf("want the two default spread constraints, got %v", spec.TopologySpreadConstraints)
		}
	case "origin":
		if !has("Deployment", "shoal-origin") || !has("Service", "shoal-origin") || !has("ConfigMap", "shoal-origin-files") {
			t.Errorf("no reference origin")
		}
		if want := "http://shoal-origin.cdn.svc.cluster.local:9000"; f["origin"] != want {
			t.Errorf("--origin=%s, want %s", f["origin"], want)
		}
	case "origin-persistence":
		if !has("PersistentVolumeClaim", "shoal-origin") || has("ConfigMap", "shoal-origin-files") {
			t.Errorf("want the origin's PVC and no files ConfigMap")
		}
		if v := volume(spec, "data"); v == nil || v.EmptyDir == nil || v.EmptyDir.SizeLimit.String() != "8Gi" || f["disk-cache"] != "6553MiB" {
			t.Errorf("want an 8Gi emptyDir and --disk-cache=6553MiB, got %+v, %q", v, f["disk-cache"])
		}
	case "daemonset":
		if p.Owner.Kind != "DaemonSet" || f["advertise"] != "$(POD_IP):7000" || f["join"] != "shoal-peers.cdn.svc.cluster.local:7946" {
			t.Errorf("a DaemonSet edge joining by gossip: got %s, --join=%q --advertise=%q", p.Owner.Kind, f["join"], f["advertise"])
		}
		if _, ok := f["peers"]; ok {
			t.Errorf("--peers with --join: the edge refuses both")
		}
		if v := volume(spec, "data"); v == nil || v.EmptyDir == nil {
			t.Errorf("want an emptyDir data volume, got %+v", v)
		}
		if has("PodDisruptionBudget", "shoal-edge") {
			t.Errorf("a PodDisruptionBudget for a DaemonSet")
		}
		if s := m.get("Service", "shoal").Obj.(*corev1.Service); s.Spec.InternalTrafficPolicy == nil || *s.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal {
			t.Errorf("want internalTrafficPolicy Local")
		}
	case "daemonset-static-peers":
		if _, ok := f["join"]; ok || has("Secret", "shoal-gossip-key") {
			t.Errorf("static membership renders --join or a gossip key")
		}
		if f["advertise"] != "$(HOST_IP):7000" || f["peers"] != "10.0.0.11:7000,10.0.0.12:7000,10.0.0.13:7000" || f["disk-cache"] != "40GiB" {
			t.Errorf("--advertise=%q --peers=%q --disk-cache=%q", f["advertise"], f["peers"], f["disk-cache"])
		}
		if v := volume(spec, "data"); v == nil || v.HostPath == nil || v.HostPath.Path != "/var/lib/shoal" {
			t.Errorf("want a hostPath data volume, got %+v", v)
		}
		if c := container(spec, "chown-data"); c == nil || *c.SecurityContext.RunAsUser != 0 {
			t.Errorf("want the chown init container")
		}
		hostPorts := map[string]int32{}
		for _, cp := range edge.Ports {
			hostPorts[cp.Name] = cp.HostPort
		}
		if hostPorts["peer"] != 7000 || hostPorts["http"] != 8080 {
			t.Errorf("hostPorts %v: want peer 7000, http 8080", hostPorts)
		}
	case "daemonset-containerd":
		c := container(spec, "containerd-hosts")
		want := []string{"containerd-hosts", "--dir=/host/containerd-certs.d", "--registry=registry.example.com:5000",
			"--server=http://registry.example.com:5000", "--mirror=http://$(HOST_IP):30080"}
		if c == nil || !slices.Equal(c.Args, want) {
			t.Errorf("containerd-hosts init container %+v: want args %q", c, want)
		}
		if v := volume(spec, "containerd-certs"); v == nil || v.HostPath == nil || v.HostPath.Path != "/etc/containerd/certs.d" {
			t.Errorf("want a hostPath volume of /etc/containerd/certs.d, got %+v", v)
		}
		if f["registry-names"] != "registry.example.com:5000" {
			t.Errorf("--registry-names=%q: want the registry's name", f["registry-names"])
		}
	case "static":
		if len(strings.Split(f["peers"], ",")) != 4 || f["node-id"] != "" || has("Secret", "shoal-gossip-key") {
			t.Errorf("static StatefulSet: want 4 --peers, no --node-id, no gossip key; got --peers=%q", f["peers"])
		}
		if hasPort(spec, "gossip", corev1.ProtocolTCP) || slices.ContainsFunc(m.get("Service", "shoal-peers").Obj.(*corev1.Service).Spec.Ports,
			func(p corev1.ServicePort) bool { return strings.HasPrefix(p.Name, "gossip") }) {
			t.Errorf("gossip ports without gossip")
		}
	case "gossip-key-secret":
		if f["join"] != "shoal-peers.cdn.svc.cluster.local:7947" || f["gossip-listen"] != "[$(POD_IP)]:7947" {
			t.Errorf("edge.ports.gossip=7947: --join=%q --gossip-listen=%q", f["join"], f["gossip-listen"])
		}
		if v := volume(spec, "gossip-key"); v == nil || v.Secret == nil || v.Secret.SecretName != "shoal-fleet-gossip" ||
			len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "key" || has("Secret", "shoal-gossip-key") {
			t.Errorf("gossip key volume %+v: want key \"key\" of the Secret shoal-fleet-gossip, and no generated Secret", v)
		}
		if f["peer-upload-limit"] != "100MB" || f["origin-limit"] != "50MB" {
			t.Errorf("--peer-upload-limit=%q --origin-limit=%q", f["peer-upload-limit"], f["origin-limit"])
		}
		checkGossipPolicy(t, m)
	case "cert-manager":
		c := m.get("Certificate", "shoal-peer")
		if c == nil || c.Certificate.Spec.SecretName != "shoal-tls" || has("Secret", "shoal-tls") {
			t.Fatalf("want a Certificate into shoal-tls and no generated Secret")
		}
		if !slices.Contains(c.Certificate.Spec.Usages, "client auth") || !slices.Contains(c.Certificate.Spec.Usages, "server auth") {
			t.Errorf("peers use the certificate both ways: usages %v", c.Certificate.Spec.Usages)
		}
		checkTLSItems(t, spec, "shoal-tls", "ca.crt", "tls.crt", "tls.key")
	case "existing-secret":
		if has("Secret", "shoal-tls") || has("Secret", "shoal-admin-token") {
			t.Errorf("rendered a Secret the user brings")
		}
		checkTLSItems(t, spec, "shoal-fleet-tls", "ca.crt", "node.crt", "node.key")
		if e := env(edge, "SHOAL_ADMIN_TOKEN"); e == nil || e.ValueFrom.SecretKeyRef.Name != "shoal-admin" || e.ValueFrom.SecretKeyRef.Key != "admin-token" {
			t.Errorf("SHOAL_ADMIN_TOKEN: %+v", e)
		}
	case "ingress":
		ing := m.get("Ingress", "shoal")
		if ing == nil {
			t.Fatal("no Ingress")
		}
		s := m.get("Service", "shoal").Obj.(*corev1.Service)
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			t.Errorf("Service %s, externalTrafficPolicy %s", s.Spec.Type, s.Spec.ExternalTrafficPolicy)
		}
	case "servicemonitor":
		if m.get("ServiceMonitor", "shoal-edge") == nil || m.get("ConfigMap", "shoal-dashboard") == nil {
			t.Fatalf("no ServiceMonitor or dashboard")
		}
		cm := m.get("ConfigMap", "shoal-dashboard").Obj.(*corev1.ConfigMap)
		if d := cm.Data["shoal-dashboard.json"]; len(d) < 1000 || strings.Contains(d, "${DS_PROMETHEUS}") || !strings.Contains(d, `"uid": "prometheus"`) {
			t.Errorf("dashboard: %d bytes, datasource input left or not set", len(d))
		}
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboard labels %v", cm.Labels)
		}
		if e := env(edge, "OTEL_TRACES_SAMPLER_ARG"); e == nil || e.Value != "0.1" {
			t.Errorf("OTEL_TRACES_SAMPLER_ARG: %+v", e)
		}
	case "networkpolicy":
		if len(m.all("NetworkPolicy")) != 2 {
			t.Errorf("want NetworkPolicies for the edges and the origin")
		}
		checkGossipPolicy(t, m)
	case "zone":
		c := container(spec, "zone")
		if c == nil || m.get("ClusterRole", "cdn-shoal-zone") == nil || m.get("ClusterRoleBinding", "cdn-shoal-zone") == nil {
			t.Fatalf("want the zone init container, ClusterRole and binding")
		}
		if v := volume(spec, "kube-api-access"); v == nil || v.Projected == nil {
			t.Errorf("no projected token volume")
		}
		if e := env(edge, "SHOAL_ZONE_FILE"); e == nil || e.Value != "/etc/shoal/zone/zone" {
			t.Errorf("SHOAL_ZONE_FILE: %+v", e)
		}
	case "memory":
		if _, ok := f["data-dir"]; ok || volume(spec, "data") != nil || len(p.Claims) != 0 || f["disk-cache"] != "256MiB" {
			t.Errorf("storage memory: want no --data-dir, no data volume, --disk-cache=256MiB (got %q)", f["disk-cache"])
		}
		if *p.Owner.Obj.(*appsv1.StatefulSet).Spec.Replicas != 5 || env(edge, "SHOAL_ADMIN_TOKEN") != nil || has("PodDisruptionBudget", "shoal-edge") {
			t.Errorf("want 5 edges, no admin token, no PodDisruptionBudget")
		}
		if !slices.Contains(edge.Args, "--origin-timeout=30s") || edge.Args[len(edge.Args)-1] != "--origin-timeout=10s" {
			t.Errorf("extraArgs should come last (and win): %v", edge.Args)
		}
	case "client-tls":
		checkClientTLS(t, m, spec, edge)
	case "everything":
		for _, k := range []string{"Certificate", "ServiceMonitor", "Ingress", "NetworkPolicy", "ClusterRole", "Deployment"} {
			if len(m.all(k)) == 0 {
				t.Errorf("no %s", k)
			}
		}
	default:
		t.Errorf("helm/shoal/ci/%s-values.yaml has no checks in checkCombination", name)
	}
}

// checkManifest checks what must hold for any values.
func checkManifest(t *testing.T, m manifest) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range m {
		id := o.Kind + "/" + o.Name
		if seen[id] {
			t.Errorf("%s rendered twice", id)
		}
		seen[id] = true
		clusterScoped := o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding"
		if (o.Namespace == namespace) == clusterScoped {
			t.Errorf("%s: namespace %q", o, o.Namespace)
		}
		if len(o.Name) > 63 && o.Kind != "ConfigMap" && o.Kind != "Secret" {
			t.Errorf("%s: name longer than 63", o)
		}
	}
	secrets, configMaps := map[string]bool{}, map[string]bool{"kube-root-ca.crt": true}
	for _, o := range m.all("Secret") {
		secrets[o.Name] = true
	}
	for _, o := range m.all("Certificate") {
		secrets[o.Certificate.Spec.SecretName] = true
	}
	for _, o := range m.all("ConfigMap") {
		configMaps[o.Name] = true
	}
	for _, p := range m.podTemplates() {
		checkPod(t, m, p, secrets, configMaps)
	}
	checkEdge(t, m)
	checkServices(t, m)
	for _, o := range m.all("PodDisruptionBudget") {
		pdb := o.Obj.(*policyv1.PodDisruptionBudget)
		if n := len(podsSelected(m, pdb.Spec.Selector.MatchLabels)); n != 1 {
			t.Errorf("%s selects %d workloads", o, n)
		}
	}
	for _, o := range m.all("NetworkPolicy") {
		np := o.Obj.(*networkingv1.NetworkPolicy)
		ps := podsSelected(m, np.Spec.PodSelector.MatchLabels)
		if len(ps) != 1 {
			t.Fatalf("%s selects %d workloads", o, len(ps))
		}
		for _, r := range np.Spec.Ingress {
			for _, port := range r.Ports {
				if port.Port.Type == intstr.String && !hasPort(&ps[0].Template.Spec, port.Port.StrVal, *port.Protocol) {
					t.Errorf("%s: port %s/%s is not a container port of %s", o, port.Port.StrVal, *port.Protocol, ps[0].Owner)
				}
			}
		}
	}
	for _, o := range m.all("ServiceMonitor") {
		sm := o.ServiceMonitor
		var svcs []*corev1.Service
		for _, so := range m.all("Service") {
			if s := so.Obj.(*corev1.Service); selects(sm.Spec.Selector.MatchLabels, s.Labels) {
				svcs = append(svcs, s)
			}
		}
		if len(svcs) != 1 || svcs[0].Spec.ClusterIP != "None" {
			t.Fatalf("%s: selects %d Services, want the peers Service", o, len(svcs))
		}
		for _, e := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(svcs[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
				t.Errorf("%s: port %q not in Service %s", o, e.Port, svcs[0].Name)
			}
			if a := e.Authorization; a != nil && !secrets[a.Credentials.Name] && !strings.HasPrefix(a.Credentials.Name, "shoal-admin") {
				t.Errorf("%s: token Secret %s is not rendered", o, a.Credentials.Name)
			}
		}
	}
	for _, o := range m.all("ClusterRole") {
		for _, r := range o.Obj.(*rbacv1.ClusterRole).Rules {
			if !slices.Equal(r.Verbs, []string{"get"}) || !slices.Equal(r.Resources, []string{"nodes"}) {
				t.Errorf("%s: rule %v: the chart only needs get nodes", o, r)
			}
		}
	}
}

// checkPod checks one workload's pod template: selector, hardening,
// volumes, environment and probes.
func checkPod(t *testing.T, m manifest, p podTemplate, secrets, configMaps map[string]bool) {
	t.Helper()
	var sel map[string]string
	switch w := p.Owner.Obj.(type) {
	case *appsv1.StatefulSet:
		sel = w.Spec.Selector.MatchLabels
	case *appsv1.DaemonSet:
		sel = w.Spec.Selector.MatchLabels
	case *appsv1.Deployment:
		sel = w.Spec.Selector.MatchLabels
	}
	if !selects(sel, p.Template.Labels) {
		t.Errorf("%s: selector %v does not select its pods %v", p.Owner, sel, p.Template.Labels)
	}
	spec := &p.Template.Spec
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", p.Owner, psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: the API token is mounted", p.Owner)
	}
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Errorf("%s: service links on: Services named shoal-* would set SHOAL_* flags", p.Owner)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		// The user's own Secrets: "fleet" ones in the ci values, and
		// clientTLS.secrets (client-tls-<n> volumes).
		if s := v.Secret; s != nil && !secrets[s.SecretName] && !strings.Contains(s.SecretName, "fleet") && !strings.HasPrefix(v.Name, "client-tls-") {
			t.Errorf("%s: volume %s: Secret %s is not rendered", p.Owner, v.Name, s.SecretName)
		}
		if c := v.ConfigMap; c != nil && !configMaps[c.Name] {
			t.Errorf("%s: volume %s: ConfigMap %s is not rendered", p.Owner, v.Name, c.Name)
		}
		if pv := v.PersistentVolumeClaim; pv != nil && m.get("PersistentVolumeClaim", pv.ClaimName) == nil {
			t.Errorf("%s: volume %s: claim %s is not rendered", p.Owner, v.Name, pv.ClaimName)
		}
	}
	for _, c := range p.Claims {
		volumes[c.Name] = corev1.Volume{Name: c.Name}
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		what := fmt.Sprintf("%s: container %s", p.Owner, c.Name)
		sc := c.SecurityContext
		// Documented: chown-data runs as root with CAP_CHOWN only,
		// containerd-hosts as root without capabilities (the node's
		// /etc/containerd/certs.d is root's).
		root := c.Name == "chown-data" || c.Name == "containerd-hosts"
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
			sc.RunAsNonRoot == nil || *sc.RunAsNonRoot == root {
			t.Errorf("%s: securityContext %+v is not hardened", what, sc)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory request or limit", what)
		}
		if c.Image == "" || strings.HasSuffix(c.Image, ":") {
			t.Errorf("%s: image %q", what, c.Image)
		}
		for _, vm := range c.VolumeMounts {
			if _, ok := volumes[vm.Name]; !ok {
				t.Errorf("%s: mounts volume %s, which the pod does not have", what, vm.Name)
			}
		}
		defined := map[string]bool{}
		for _, e := range c.Env {
			for _, ref := range varRefs(e.Value) {
				if !defined[ref] {
					t.Errorf("%s: env %s uses $(%s) before it is defined", what, e.Name, ref)
				}
			}
			defined[e.Name] = true
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				if n := e.ValueFrom.SecretKeyRef.Name; !secrets[n] && n != "shoal-admin" {
					t.Errorf("%s: env %s from Secret %s, which is not rendered", what, e.Name, n)
				}
			}
		}
		if len(c.Command) == 0 { // the shoal image: $(VAR) in args must be defined
			for _, a := range c.Args {
				for _, ref := range varRefs(a) {
					if !defined[ref] {
						t.Errorf("%s: argument %q uses $(%s), which is not in its env", what, a, ref)
					}
				}
			}
		}
		for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if probe == nil {
				continue
			}
			var port intstr.IntOrString
			switch {
			case probe.HTTPGet != nil:
				port = probe.HTTPGet.Port
			case probe.TCPSocket != nil:
				port = probe.TCPSocket.Port
			}
			if port.Type != intstr.String || !hasPort(spec, port.StrVal, corev1.ProtocolTCP) {
				t.Errorf("%s: probe port %v is not a named TCP port of the container", what, port)
			}
		}
	}
	for _, c := range spec.Containers {
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Errorf("%s: container %s has no liveness or readiness probe", p.Owner, c.Name)
		}
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil && p.Owner.Kind != "DaemonSet" {
			t.Errorf("%s: hostPath volume outside DaemonSet mode", p.Owner)
		}
	}
}

// checkEdge checks the edge's flags: each edge finds itself in --peers, the
// grace period covers the drain, the TLS directory has the files the binary
// reads.
func checkEdge(t *testing.T, m manifest) {
	t.Helper()
	p, c := m.edge(t)
	f := flags(c)
	if c.Args[0] != "edge" {
		t.Errorf("edge args start with %q", c.Args[0])
	}
	peers := strings.Split(f["peers"], ",")
	if f["peers"] == "" {
		peers = nil
	}
	if _, ok := f["join"]; ok {
		checkGossip(t, m, p, c)
		peers = nil
	}
	switch w := p.Owner.Obj.(type) {
	case *appsv1.StatefulSet:
		if _, ok := f["join"]; !ok && len(peers) != int(*w.Spec.Replicas) {
			t.Errorf("--peers has %d entries for %d replicas", len(peers), *w.Spec.Replicas)
		}
		headless := m.get("Service", w.Spec.ServiceName)
		if headless == nil || headless.Obj.(*corev1.Service).Spec.ClusterIP != "None" || !headless.Obj.(*corev1.Service).Spec.PublishNotReadyAddresses {
			t.Errorf("serviceName %s: want a headless Service that publishes not-ready addresses", w.Spec.ServiceName)
		}
		for i := range int(*w.Spec.Replicas) {
			pod := fmt.Sprintf("%s-%d", w.Name, i)
			self := strings.ReplaceAll(f["advertise"], "$(POD_NAME)", pod)
			if _, gossip := f["join"]; !gossip && !slices.Contains(peers, self) {
				t.Errorf("pod %s advertises %s, which is not in --peers %v: it would refuse to start", pod, self, peers)
			}
			if want := fmt.Sprintf("%s.%s.%s.svc.cluster.local:", pod, w.Spec.ServiceName, namespace); !strings.HasPrefix(self, want) {
				t.Errorf("pod %s advertises %s: not its DNS name %s…", pod, self, want)
			}
		}
	case *appsv1.DaemonSet:
		for _, peer := range peers {
			host, port, _ := strings.Cut(peer, ":")
			if self := strings.ReplaceAll(f["advertise"], "$(HOST_IP)", host); self != peer {
				t.Errorf("the edge on node %s would advertise %s, not its entry %s", host, self, peer)
			}
			if !hasHostPort(c, port) {
				t.Errorf("static peer port %s is not a hostPort", port)
			}
		}
	default:
		t.Errorf("edge workload is a %s", p.Owner.Kind)
	}
	grace := time.Duration(*p.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	delay, err1 := time.ParseDuration(f["drain-delay"])
	timeout, err2 := time.ParseDuration(f["drain-timeout"])
	if err1 != nil || err2 != nil || grace <= delay+timeout {
		t.Errorf("terminationGracePeriodSeconds %v ≤ --drain-delay %s + --drain-timeout %s: the kubelet would kill a draining edge", grace, f["drain-delay"], f["drain-timeout"])
	}
	var tlsMount string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == f["tls-dir"] {
			tlsMount = vm.Name
		}
	}
	if v := volume(&p.Template.Spec, tlsMount); v == nil || v.Secret == nil {
		t.Errorf("--tls-dir %s is not a Secret volume", f["tls-dir"])
	} else {
		var paths []string
		for _, it := range v.Secret.Items {
			paths = append(paths, it.Path)
		}
		if slices.Sort(paths); !slices.Equal(paths, []string{"ca.crt", "node.crt", "node.key"}) {
			t.Errorf("--tls-dir holds %v, want ca.crt, node.crt, node.key", paths)
		}
	}
	if d, ok := f["data-dir"]; ok && !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == d && !vm.ReadOnly }) {
		t.Errorf("--data-dir %s is not a writable mount", d)
	}
	for _, name := range []string{"memory-cache", "segment-size", "scrub-rate"} {
		if _, err := parseSize(f[name]); err != nil {
			t.Errorf("--%s=%s: %v", name, f[name], err)
		}
	}
}

// checkGossip checks an edge in gossip membership: no --peers; --join names
// the headless peers Service (whose name resolves to every edge pod, ready
// or not) at the gossip port that Service and the container carry on TCP
// and UDP; the edge listens for gossip on that port, is named by its pod;
// and its key file, if any, is in a Secret volume.
func checkGossip(t *testing.T, m manifest, p podTemplate, c *corev1.Container) {
	t.Helper()
	f := flags(c)
	if _, ok := f["peers"]; ok {
		t.Errorf("--peers and --join: the edge refuses to start")
	}
	host, port, err := net.SplitHostPort(f["join"])
	svcName, _, _ := strings.Cut(host, ".")
	if err != nil || host != fmt.Sprintf("%s.%s.svc.cluster.local", svcName, namespace) {
		t.Fatalf("--join=%s: want <service>.%s.svc.cluster.local:<port>", f["join"], namespace)
	}
	svc := m.get("Service", svcName)
	if svc == nil {
		t.Fatalf("--join=%s: no Service %s", f["join"], svcName)
	}
	s := svc.Obj.(*corev1.Service)
	if s.Spec.ClusterIP != "None" || !s.Spec.PublishNotReadyAddresses || len(podsSelected(m, s.Spec.Selector)) != 1 || !selects(s.Spec.Selector, p.Template.Labels) {
		t.Errorf("--join=%s: Service %s must be headless, publish not-ready addresses and select the edges", f["join"], svcName)
	}
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
		var svcPort, ctrPort bool
		for _, sp := range s.Spec.Ports {
			if strconv.Itoa(int(sp.Port)) == port && sp.Protocol == proto {
				svcPort = true
				for _, cp := range c.Ports {
					if cp.Name == sp.TargetPort.StrVal && strconv.Itoa(int(cp.ContainerPort)) == port && cp.Protocol == proto {
						ctrPort = true
					}
				}
			}
		}
		if !svcPort || !ctrPort {
			t.Errorf("gossip port %s/%s: on the Service %v, on the container %v", port, proto, svcPort, ctrPort)
		}
	}
	if _, lport, err := net.SplitHostPort(f["gossip-listen"]); err != nil || lport != port || !strings.HasPrefix(f["gossip-listen"], "[$(POD_IP)]:") {
		t.Errorf("--gossip-listen=%s: want [$(POD_IP)]:%s", f["gossip-listen"], port)
	}
	if f["node-id"] != "$(POD_NAME)" {
		t.Errorf("--node-id=%q: want $(POD_NAME), unique per pod", f["node-id"])
	}
	if kf, ok := f["gossip-key-file"]; ok {
		var mount *corev1.VolumeMount
		for i, vm := range c.VolumeMounts {
			if strings.HasPrefix(kf, vm.MountPath+"/") {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Fatalf("--gossip-key-file=%s is not under a mount", kf)
		}
		v := volume(&p.Template.Spec, mount.Name)
		if v == nil || v.Secret == nil || !slices.ContainsFunc(v.Secret.Items, func(it corev1.KeyToPath) bool { return mount.MountPath+"/"+it.Path == kf }) {
			t.Errorf("--gossip-key-file=%s is not an item of a Secret volume: %+v", kf, v)
		}
	}
}

// checkGossipPolicy checks that the edges' NetworkPolicy lets the edges
// reach each other's gossip port on TCP and UDP.
func checkGossipPolicy(t *testing.T, m manifest) {
	t.Helper()
	np := m.get("NetworkPolicy", "shoal-edge")
	if np == nil {
		t.Fatal("no NetworkPolicy for the edges")
	}
	allowed := map[corev1.Protocol]bool{}
	for _, r := range np.Obj.(*networkingv1.NetworkPolicy).Spec.Ingress {
		fromEdges := slices.ContainsFunc(r.From, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.PodSelector != nil && p.PodSelector.MatchLabels["app.kubernetes.io/component"] == "edge"
		})
		for _, port := range r.Ports {
			if fromEdges && strings.HasPrefix(port.Port.StrVal, "gossip") {
				allowed[*port.Protocol] = true
			}
		}
	}
	if !allowed[corev1.ProtocolTCP] || !allowed[corev1.ProtocolUDP] {
		t.Errorf("NetworkPolicy allows gossip between edges on %v, want TCP and UDP", allowed)
	}
}

// checkServices checks that each Service selects pods with the ports it
// targets, and that Ingress backends exist.
func checkServices(t *testing.T, m manifest) {
	t.Helper()
	for _, o := range m.all("Service") {
		s := o.Obj.(*corev1.Service)
		ps := podsSelected(m, s.Spec.Selector)
		if len(ps) != 1 {
			t.Errorf("%s selects %d workloads", o, len(ps))
			continue
		}
		for _, sp := range s.Spec.Ports {
			if sp.TargetPort.Type != intstr.String || !hasPort(&ps[0].Template.Spec, sp.TargetPort.StrVal, sp.Protocol) {
				t.Errorf("%s: targetPort %v/%s is not a named port of %s", o, sp.TargetPort, sp.Protocol, ps[0].Owner)
			}
		}
	}
	for _, o := range m.all("Ingress") {
		for _, r := range o.Obj.(*networkingv1.Ingress).Spec.Rules {
			for _, path := range r.HTTP.Paths {
				b := path.Backend.Service
				s := m.get("Service", b.Name)
				if s == nil || !slices.ContainsFunc(s.Obj.(*corev1.Service).Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == b.Port.Name }) {
					t.Errorf("%s: backend %s:%s does not exist", o, b.Name, b.Port.Name)
				}
			}
		}
	}
}

func checkTLSItems(t *testing.T, spec *corev1.PodSpec, secret, ca, cert, key string) {
	t.Helper()
	v := volume(spec, "tls")
	if v == nil || v.Secret == nil || v.Secret.SecretName != secret {
		t.Fatalf("tls volume %+v: want Secret %s", v, secret)
	}
	got := map[string]string{}
	for _, it := range v.Secret.Items {
		got[it.Path] = it.Key
	}
	if want := map[string]string{"ca.crt": ca, "node.crt": cert, "node.key": key}; !maps.Equal(got, want) {
		t.Errorf("tls items %v, want %v", got, want)
	}
}

func podsSelected(m manifest, selector map[string]string) []podTemplate {
	var out []podTemplate
	for _, p := range m.podTemplates() {
		if selects(selector, p.Template.Labels) {
			out = append(out, p)
		}
	}
	return out
}

func hasPort(spec *corev1.PodSpec, name string, proto corev1.Protocol) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name && p.Protocol == proto {
				return true
			}
		}
	}
	return false
}

func hasHostPort(c *corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if strconv.Itoa(int(p.HostPort)) == port && p.Protocol == corev1.ProtocolUDP {
			return true
		}
	}
	return false
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func env(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// varRefs returns the $(VAR) references the kubelet expands in s.
func varRefs(s string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(strings.ReplaceAll(s, "$$", ""), -1) {
		out = append(out, m[1])
	}
	return out
}

// parseSize checks a size the way the binary reads it (cmd/shoal's sizes).
var sizeRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(TiB|GiB|MiB|KiB|TB|GB|MB|KB|kB|T|G|M|K|k|B)?$`)

func parseSize(s string) (string, error) {
	if !sizeRE.MatchString(s) {
		return "", fmt.Errorf("not a size the binary reads")
	}
	return s, nil
}

// TestSchemaRejectsTypos checks that values.schema.json turns a misspelled
// or misplaced key, or a wrong value, into an error.
func TestSchemaRejectsTypos(t *testing.T) {
	t.Parallel()
	base := []string{"--set", "edge.origin=http://origin.example.com"}
	if _, err := runHelm(t, append([]string{"template", release, chartDir(t), "--kube-version", kubeVersion}, base...)...); err != nil {
		t.Fatalf("the valid base values fail: %v", err)
	}
	for _, set := range []string{
		"typo=1",
		"edge.origni=http://x",
		"edge.port.http=8080",
		"edge.ports.htttp=8080",
		"statefulset.replica=3",
		"tls.sorce=generate",
		"tls.certManager.issuer.name=x",
		"zone.enable=true",
		"referenceOrigin.persistance.enabled=true",
		"serviceMonitor.intervall=10s",
		"networkPolicy.enabled=yes",
		"mode=deamonset",
		"storage.type=pvc",
		"storage.size=20GB",
		"service.type=Ingress",
		"edge.memoryCache=lots",
		"edge.drainTimeout=30",
		"edge.logLevel=verbose",
		"otel.EXPORTER_ENDPOINT=http://x",
		"resources.limit.memory=1Gi",
		"tolerations[0].efect=NoSchedule",
		"topologySpreadConstraints[0].maxskew=1",
		"ingress.hosts[0].paths[0].pathtype=Prefix",
		"daemonset.staticPeers[0]=10.0.0.1",
		"membership.mode=gosip",
		"membership.mod=static",
		"membership.gossipKey.source=random",
		"membership.gossipKey.existingSecret.nmae=x",
		"edge.ports.gosip=7946",
		"edge.ports.gossip=0",
		"edge.peerUploadLimit=fast",
		"edge.originLimit=50 MB",
	} {
		t.Run(set, func(t *testing.T) {
			t.Parallel()
			_, err := runHelm(t, append([]string{"template", release, chartDir(t), "--kube-version", kubeVersion, "--set", set}, base...)...)
			if err == nil || !strings.Contains(err.Error(), "schema") {
				t.Errorf("--set %s: got %v, want a schema error", set, err)
			}
		})
	}
}

// TestRequiredValues checks the errors that tell a user what is missing.
func TestRequiredValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{nil, "edge.origin is required"},
		{[]string{"edge.origin=http://o", "tls.source=existingSecret"}, "existingSecret/name"},
		{[]string{"edge.origin=http://o", "tls.source=certManager"}, "issuerRef/name"},
		{[]string{"edge.origin=http://o", "mode=daemonset", "storage.type=persistentVolumeClaim"}, "needs mode statefulset"},
		{[]string{"edge.origin=http://o", "storage.type=hostPath"}, "needs mode daemonset"},
		{[]string{"edge.origin=http://o", "membership.gossipKey.source=existingSecret"}, "gossipKey/existingSecret/name"},
		{[]string{"edge.origin=http://o", "mode=daemonset", "daemonset.staticPeers={10.0.0.1:7000}"}, "needs membership.mode=static"},
		{[]string{"edge.origin=http://o", "containerdMirror.enabled=true", "containerdMirror.registry=o"}, "needs mode daemonset"},
		{[]string{"edge.origin=http://o", "mode=daemonset", "containerdMirror.enabled=true", "containerdMirror.registry=o"}, "needs daemonset.clientHostPort"},
		{[]string{"edge.origin=http://o", "mode=daemonset", "daemonset.clientHostPort=30080", "containerdMirror.enabled=true"}, "containerdMirror.registry is required"},
	} {
		t.Run(strings.Join(tc.sets, ","), func(t *testing.T) {
			t.Parallel()
			args := []string{"template", release, chartDir(t), "--kube-version", kubeVersion}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			_, err := runHelm(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// checkClientTLS checks the client-tls combination: HTTPS and HTTP/3 on
// 8443 (TCP and UDP), advertised at the Service's 443; one --tls-cert and
// --tls-key per Secret, the user's first, each Secret mounted whole as a
// directory (not subPath, so renewals reach the pod); a cert-manager
// Certificate for the chart-made one; the Service and NetworkPolicy open
// TCP and UDP.
func checkClientTLS(t *testing.T, m manifest, spec *corev1.PodSpec, edge *corev1.Container) {
	t.Helper()
	var certs, keys []string
	for _, a := range edge.Args {
		if v, ok := strings.CutPrefix(a, "--tls-cert="); ok {
			certs = append(certs, v)
		}
		if v, ok := strings.CutPrefix(a, "--tls-key="); ok {
			keys = append(keys, v)
		}
	}
	f := flags(edge)
	if f["tls-listen"] != ":8443" || f["h3-listen"] != ":8443" || f["h3-advertise-port"] != "443" {
		t.Errorf("--tls-listen=%q --h3-listen=%q --h3-advertise-port=%q, want :8443, :8443, 443", f["tls-listen"], f["h3-listen"], f["h3-advertise-port"])
	}
	secrets := []string{"downloads-example-com-tls", "media-example-com-tls"}
	if len(certs) != len(secrets) || len(keys) != len(secrets) {
		t.Fatalf("--tls-cert %v --tls-key %v: want one of each per Secret %v", certs, keys, secrets)
	}
	for i, name := range secrets {
		var mount *corev1.VolumeMount
		for j := range edge.VolumeMounts {
			if vm := &edge.VolumeMounts[j]; vm.MountPath+"/tls.crt" == certs[i] {
				mount = vm
			}
		}
		if mount == nil || mount.SubPath != "" || !mount.ReadOnly || mount.MountPath+"/tls.key" != keys[i] {
			t.Errorf("--tls-cert %s: mount %+v, want a whole read-only directory holding tls.crt and tls.key", certs[i], mount)
			continue
		}
		v := volume(spec, mount.Name)
		if v == nil || v.Secret == nil || v.Secret.SecretName != name {
			t.Errorf("--tls-cert %s: volume %+v, want the Secret %s", certs[i], v, name)
		}
	}
	c := m.get("Certificate", "shoal-client-0")
	if c == nil || c.Certificate.Spec.SecretName != "media-example-com-tls" || !slices.Equal(c.Certificate.Spec.DNSNames, []string{"media.example.com"}) ||
		c.Certificate.Spec.IssuerRef.Kind != "ClusterIssuer" || c.Certificate.Spec.IssuerRef.Name != "letsencrypt" {
		t.Errorf("cert-manager Certificate for media.example.com: %+v", c)
	} else if !slices.Contains(c.Certificate.Spec.Usages, "server auth") {
		t.Errorf("client certificate usages %v", c.Certificate.Spec.Usages)
	}
	if len(m.all("Certificate")) != 1 {
		t.Errorf("%d Certificates, want the one for media.example.com (none for the user's own Secret or the generated peer certificate)", len(m.all("Certificate")))
	}
	if !hasPort(spec, "https", corev1.ProtocolTCP) || !hasPort(spec, "h3", corev1.ProtocolUDP) {
		t.Errorf("the edge container lacks the https (TCP) or h3 (UDP) port")
	}
	svc := m.get("Service", "shoal").Obj.(*corev1.Service)
	got := map[string]string{}
	for _, p := range svc.Spec.Ports {
		got[p.Name] = fmt.Sprintf("%s %d->%s node %d", p.Protocol, p.Port, p.TargetPort.String(), p.NodePort)
	}
	if got["https"] != "TCP 443->https node 30443" || got["h3"] != "UDP 443->h3 node 30443" {
		t.Errorf("client Service ports %v: want https TCP and h3 UDP on 443 (node 30443)", got)
	}
	np := m.get("NetworkPolicy", "shoal-edge").Obj.(*networkingv1.NetworkPolicy)
	open := map[string]bool{}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			open[p.Port.String()+"/"+string(*p.Protocol)] = true
		}
	}
	if !open["https/TCP"] || !open["h3/UDP"] {
		t.Errorf("NetworkPolicy opens %v: want https/TCP and h3/UDP", open)
	}
}
