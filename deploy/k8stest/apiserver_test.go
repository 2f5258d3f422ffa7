package k8stest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// apiServer is an etcd and a kube-apiserver on loopback, started by a test.
type apiServer struct {
	config     *rest.Config
	kubeconfig string // a file for helm
	dyn        *dynamic.DynamicClient
	disc       *discovery.DiscoveryClient
}

// assetsDir finds kube-apiserver and etcd: $KUBEBUILDER_ASSETS (as
// controller-runtime's envtest), else the CI cache.
func assetsDir(t *testing.T) string {
	t.Helper()
	has := func(d string) bool {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if fi, err := os.Stat(filepath.Join(d, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		if !has(d) {
			missingTool(t, "KUBEBUILDER_ASSETS=%s lacks kube-apiserver or etcd", d)
		}
		return d
	}
	ds, _ := filepath.Glob(filepath.Join(ciCache, "kube-apiserver-*"))
	sort.Strings(ds)
	for i := len(ds) - 1; i >= 0; i-- {
		if has(ds[i]) {
			return ds[i]
		}
	}
	missingTool(t, "no kube-apiserver and etcd (set KUBEBUILDER_ASSETS to a folder holding both)")
	return ""
}

// startAPIServer starts etcd and kube-apiserver, authenticates as a member
// of system:masters with a client certificate, and stops both when t ends.
func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	assets := assetsDir(t)
	dir := t.TempDir()
	ports := freePorts(t, 3)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	etcd := startDaemon(t, filepath.Join(assets, "etcd"),
		"--name=shoal-test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=shoal-test="+peerURL, "--log-level=warn")
	waitUntil(t, etcd, 30*time.Second, func() bool {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	pki := newPKI(t, dir)
	server := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	kas := startDaemon(t, filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir="+filepath.Join(dir, "kas-certs"),
		"--tls-cert-file="+pki.serverCert, "--tls-private-key-file="+pki.serverKey,
		"--client-ca-file="+pki.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki.saKey, "--service-account-signing-key-file="+pki.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		// No controller manager runs the endpoints of the default
		// "kubernetes" Service for a loopback address.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false")

	caPEM, _ := os.ReadFile(pki.caCert)
	certPEM, _ := os.ReadFile(pki.clientCert)
	keyPEM, _ := os.ReadFile(pki.clientKey)
	cfg := &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, CertData: certPEM, KeyData: keyPEM},
		QPS: 100, Burst: 200, Timeout: 30 * time.Second}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	waitUntil(t, kas, 90*time.Second, func() bool {
		resp, err := hc.Get(server + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	kubeconfig := filepath.Join(dir, "kubeconfig")
	b64 := base64.StdEncoding.EncodeToString
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, server, b64(caPEM), b64(certPEM), b64(keyPEM))
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &apiServer{config: cfg, kubeconfig: kubeconfig, dyn: dyn, disc: disc}
}

// startDaemon starts a process this test owns, kills it when the test ends,
// and prints its output if the test failed.
func startDaemon(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			tail := out.String()
			if len(tail) > 8000 {
				tail = "…" + tail[len(tail)-8000:]
			}
			t.Logf("%s:\n%s", filepath.Base(bin), tail)
		}
	})
	return p
}

func waitUntil(t *testing.T, p *process, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited: %v", filepath.Base(p.cmd.Path), err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v", filepath.Base(p.cmd.Path), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type pkiFiles struct{ caCert, serverCert, serverKey, clientCert, clientKey, saKey string }

// newPKI writes a CA, the API server's serving certificate, an admin client
// certificate and the service account signing key into dir.
func newPKI(t *testing.T, dir string) pkiFiles {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "EC PRIVATE KEY", der)
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shoal-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	sign := func(serial int64, subject pkix.Name, usage x509.ExtKeyUsage, k *ecdsa.PrivateKey) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subject,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	serverKey, clientKey := key(), key()
	return pkiFiles{
		caCert:     write("ca.crt", "CERTIFICATE", caDER),
		serverCert: write("server.crt", "CERTIFICATE", sign(2, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, serverKey)),
		serverKey:  writeKey("server.key", serverKey),
		clientCert: write("client.crt", "CERTIFICATE", sign(3, pkix.Name{CommonName: "shoal-test", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, clientKey)),
		clientKey:  writeKey("client.key", clientKey),
		saKey:      writeKey("sa.key", key()),
	}
}

// mapper maps kinds to resources as the server has them now.
func (s *apiServer) mapper(t *testing.T) *restmapper.DeferredDiscoveryRESTMapper {
	t.Helper()
	return restmapper.NewDeferredDiscoveryRESTMapper(cachedDiscovery{s.disc})
}

// resource returns the dynamic client of an object's kind.
func (s *apiServer) resource(t *testing.T, apiVersion, kind, ns string) dynamic.ResourceInterface {
	t.Helper()
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		t.Fatal(err)
	}
	mapping, err := s.mapper(t).RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if err != nil {
		t.Fatalf("%s %s: %v", apiVersion, kind, err)
	}
	if mapping.Scope.Name() == "namespace" {
		return s.dyn.Resource(mapping.Resource).Namespace(ns)
	}
	return s.dyn.Resource(mapping.Resource)
}

// createNamespace makes a namespace that enforces the restricted Pod
// Security Standard, or one without labels (privileged).
func (s *apiServer) createNamespace(t *testing.T, name string, restricted bool) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	if restricted {
		ns.SetLabels(map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
		})
	}
	if _, err := s.resource(t, "v1", "Namespace", "").Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// installed checks that every object of release's manifest exists on the
// server, decodes what the server stored strictly, and creates each pod
// template as a Pod in a server-side dry run (Pod Security admission and
// pod validation run; nothing is stored). It returns the manifest.
func (s *apiServer) installed(t *testing.T, release, ns string) manifest {
	t.Helper()
	out, err := runHelm(t, "get", "manifest", release, "--namespace", ns, "--kubeconfig", s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	m := decodeManifest(t, out)
	ctx := context.Background()
	for _, o := range m {
		got, err := s.resource(t, o.APIVersion, o.Kind, ns).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s was not created: %v", o, err)
			continue
		}
		if got.GetLabels()["app.kubernetes.io/instance"] != release {
			t.Errorf("%s: labels %v", o, got.GetLabels())
		}
	}
	for _, p := range m.podTemplates() {
		pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: p.Owner.Name + "-0", Labels: p.Template.Labels}, Spec: p.Template.Spec}
		for _, c := range p.Claims { // the StatefulSet controller's part
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: c.Name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name + "-" + pod.Name}}})
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.resource(t, "v1", "Pod", ns).Create(ctx, &unstructured.Unstructured{Object: u},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if err != nil {
			t.Errorf("a pod of %s is refused: %v", p.Owner, err)
		}
	}
	// The hooks (the `helm test` pod), which install does not create.
	hooks, err := runHelm(t, "get", "hooks", release, "--namespace", ns, "--kubeconfig", s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	hm := decodeManifest(t, hooks)
	if len(hm.all("Pod")) != 1 {
		t.Errorf("hooks %v: want the helm test pod", hm)
	}
	for _, o := range hm {
		_, err := s.resource(t, o.APIVersion, o.Kind, ns).Create(ctx, o.unstructured(t),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if err != nil {
			t.Errorf("hook %s is refused: %v", o, err)
		}
	}
	return m
}

func (s *apiServer) get(t *testing.T, apiVersion, kind, ns, name string, into any) {
	t.Helper()
	u, err := s.resource(t, apiVersion, kind, ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

// TestInstallOnAPIServer installs the chart into a real kube-apiserver: the
// StatefulSet with the generated CA and gossip key and the reference origin
// (then an upgrade, which must keep the generated Secrets), a StatefulSet
// with static membership (and an upgrade that grows --peers), a DaemonSet
// with gossip, its key from a Secret and NetworkPolicies, a DaemonSet with zones,
// a DaemonSet with hostPath and host ports, and every optional part with
// stand-ins for the cert-manager and prometheus-operator CRDs. There is no
// kubelet, so no pod runs: the test checks that the API server accepts and
// stores every object, and that the pods would be admitted under the
// restricted Pod Security Standard.
func TestInstallOnAPIServer(t *testing.T) {
	helmPath(t)
	s := startAPIServer(t)
	ctx := context.Background()
	helm := func(args ...string) string {
		t.Helper()
		out, err := runHelm(t, append(args, "--kubeconfig", s.kubeconfig)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if v, err := s.disc.ServerVersion(); err != nil || v.GitVersion != "v"+kubeVersion {
		t.Fatalf("server version %v (%v), want v%s", v, err, kubeVersion)
	}

	t.Run("statefulset", func(t *testing.T) {
		s.createNamespace(t, "shoal-sts", true)
		notes := helm("install", "shoal", chartDir(t), "--namespace", "shoal-sts", "--set", "referenceOrigin.enabled=true")
		if !strings.Contains(notes, "kubectl -n shoal-sts port-forward pod/shoal-edge-0 9100:9100") {
			t.Errorf("NOTES do not say how to reach the admin listener:\n%s", notes)
		}
		m := s.installed(t, "shoal", "shoal-sts")
		for _, want := range []string{"StatefulSet/shoal-edge", "Deployment/shoal-origin", "Service/shoal-peers", "Service/shoal",
			"Service/shoal-origin", "Secret/shoal-tls", "Secret/shoal-admin-token", "ConfigMap/shoal-origin-files",
			"PodDisruptionBudget/shoal-edge", "ServiceAccount/shoal"} {
			kind, name, _ := strings.Cut(want, "/")
			if m.get(kind, name) == nil {
				t.Errorf("no %s", want)
			}
		}
		var tls1, token1, gossip1 corev1.Secret
		s.get(t, "v1", "Secret", "shoal-sts", "shoal-tls", &tls1)
		s.get(t, "v1", "Secret", "shoal-sts", "shoal-admin-token", &token1)
		s.get(t, "v1", "Secret", "shoal-sts", "shoal-gossip-key", &gossip1)
		var svc corev1.Service
		s.get(t, "v1", "Service", "shoal-sts", "shoal-peers", &svc)
		gossipPorts := map[corev1.Protocol]int32{}
		for _, p := range svc.Spec.Ports {
			if strings.HasPrefix(p.Name, "gossip") {
				gossipPorts[p.Protocol] = p.Port
			}
		}
		if gossipPorts[corev1.ProtocolTCP] != 7946 || gossipPorts[corev1.ProtocolUDP] != 7946 || !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("the stored peers Service has gossip ports %v (want 7946 on TCP and UDP), publishNotReadyAddresses %v", gossipPorts, svc.Spec.PublishNotReadyAddresses)
		}

		helm("upgrade", "shoal", chartDir(t), "--namespace", "shoal-sts", "--reuse-values", "--set", "statefulset.replicas=4")
		var tls2, token2, gossip2 corev1.Secret
		s.get(t, "v1", "Secret", "shoal-sts", "shoal-tls", &tls2)
		s.get(t, "v1", "Secret", "shoal-sts", "shoal-admin-token", &token2)
		s.get(t, "v1", "Secret", "shoal-sts", "shoal-gossip-key", &gossip2)
		if k, err := base64.StdEncoding.DecodeString(string(gossip1.Data["gossip.key"])); err != nil || len(k) != 32 {
			t.Errorf("the generated gossip key is not 32 bytes in base64: %d bytes, %v", len(k), err)
		}
		if !bytes.Equal(gossip1.Data["gossip.key"], gossip2.Data["gossip.key"]) {
			t.Errorf("upgrade changed the generated gossip key: old and new edges could not gossip")
		}
		for _, k := range []string{"ca.crt", "node.crt", "node.key"} {
			if len(tls1.Data[k]) == 0 || !bytes.Equal(tls1.Data[k], tls2.Data[k]) {
				t.Errorf("upgrade changed the generated %s: lookup did not find the Secret", k)
			}
		}
		if !bytes.Equal(token1.Data["token"], token2.Data["token"]) || len(token1.Data["token"]) < 32 {
			t.Errorf("upgrade changed the admin token")
		}
		var sts appsv1.StatefulSet
		s.get(t, "apps/v1", "StatefulSet", "shoal-sts", "shoal-edge", &sts)
		if f := flags(&sts.Spec.Template.Spec.Containers[0]); *sts.Spec.Replicas != 4 || f["join"] != "shoal-peers.shoal-sts.svc.cluster.local:7946" {
			t.Errorf("after the upgrade: %d replicas, --join=%s", *sts.Spec.Replicas, f["join"])
		}
		helm("uninstall", "shoal", "--namespace", "shoal-sts")
		if _, err := s.resource(t, "apps/v1", "StatefulSet", "shoal-sts").Get(ctx, "shoal-edge", metav1.GetOptions{}); err == nil {
			t.Errorf("the StatefulSet is still there after helm uninstall")
		}
	})

	t.Run("statefulset-static", func(t *testing.T) {
		s.createNamespace(t, "shoal-static", true)
		helm("install", "shoal", chartDir(t), "--namespace", "shoal-static", "-f", ciValues(t)["static"])
		m := s.installed(t, "shoal", "shoal-static")
		if m.get("Secret", "shoal-gossip-key") != nil {
			t.Errorf("a gossip key Secret with static membership")
		}
		helm("upgrade", "shoal", chartDir(t), "--namespace", "shoal-static", "--reuse-values", "--set", "statefulset.replicas=5")
		var sts appsv1.StatefulSet
		s.get(t, "apps/v1", "StatefulSet", "shoal-static", "shoal-edge", &sts)
		if f := flags(&sts.Spec.Template.Spec.Containers[0]); *sts.Spec.Replicas != 5 || len(strings.Split(f["peers"], ",")) != 5 {
			t.Errorf("after the upgrade: %d replicas, --peers=%s", *sts.Spec.Replicas, f["peers"])
		}
	})

	t.Run("daemonset-gossip-key-secret", func(t *testing.T) {
		s.createNamespace(t, "shoal-gossip", true)
		helm("install", "shoal", chartDir(t), "--namespace", "shoal-gossip", "-f", ciValues(t)["gossip-key-secret"])
		s.installed(t, "shoal", "shoal-gossip")
	})

	t.Run("daemonset-zone", func(t *testing.T) {
		s.createNamespace(t, "shoal-ds", true)
		helm("install", "shoal", chartDir(t), "--namespace", "shoal-ds",
			"--set", "mode=daemonset,edge.origin=http://origin.example.com,zone.enabled=true,service.internalTrafficPolicy=Local")
		m := s.installed(t, "shoal", "shoal-ds")
		if m.get("DaemonSet", "shoal-edge") == nil || m.get("ClusterRole", "shoal-ds-shoal-zone") == nil || m.get("ClusterRoleBinding", "shoal-ds-shoal-zone") == nil {
			t.Errorf("want the DaemonSet and the zone ClusterRole and binding")
		}
	})

	t.Run("daemonset-hostpath", func(t *testing.T) {
		// hostPath and hostPort are outside the restricted (and baseline)
		// standard: a namespace of its own.
		s.createNamespace(t, "shoal-host", false)
		helm("install", "shoal", chartDir(t), "--namespace", "shoal-host", "-f", ciValues(t)["daemonset-static-peers"])
		s.installed(t, "shoal", "shoal-host")
	})

	t.Run("everything", func(t *testing.T) {
		for _, crd := range []struct{ group, kind, plural string }{
			{"cert-manager.io", "Certificate", "certificates"},
			{"monitoring.coreos.com", "ServiceMonitor", "servicemonitors"},
		} {
			s.createCRD(t, crd.group, crd.kind, crd.plural)
		}
		s.createNamespace(t, "shoal-all", true)
		helm("install", "shoal", chartDir(t), "--namespace", "shoal-all", "-f", ciValues(t)["everything"])
		m := s.installed(t, "shoal", "shoal-all")
		var kinds []string
		for _, o := range m {
			if !slices.Contains(kinds, o.Kind) {
				kinds = append(kinds, o.Kind)
			}
		}
		slices.Sort(kinds)
		want := []string{"Certificate", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Ingress", "NetworkPolicy",
			"PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"}
		if !slices.Equal(kinds, want) {
			t.Errorf("kinds installed: %v, want %v", kinds, want)
		}

		// Client HTTPS and HTTP/3 (with the Certificate CRD made above):
		// the API server takes a LoadBalancer with TCP and UDP on one port
		// and one nodePort, and the chart's client Certificate.
		s.createNamespace(t, "shoal-client-tls", true)
		helm("install", "shoal", chartDir(t), "--namespace", "shoal-client-tls", "-f", ciValues(t)["client-tls"])
		m = s.installed(t, "shoal", "shoal-client-tls")
		if m.get("Certificate", "shoal-client-0") == nil {
			t.Errorf("client-tls: no Certificate shoal-client-0 stored")
		}
		var svc corev1.Service
		s.get(t, "v1", "Service", "shoal-client-tls", "shoal", &svc)
		ports := map[string]string{}
		for _, p := range svc.Spec.Ports {
			ports[p.Name] = fmt.Sprintf("%s/%d/%d", p.Protocol, p.Port, p.NodePort)
		}
		if ports["https"] != "TCP/443/30443" || ports["h3"] != "UDP/443/30443" {
			t.Errorf("client-tls: the stored Service has ports %v, want https TCP and h3 UDP on 443 with nodePort 30443", ports)
		}
	})
}

// createCRD creates a minimal CustomResourceDefinition (any fields) for a
// kind the chart renders but Kubernetes lacks, and waits until it is served.
// The fields themselves are checked by TestRender's strict decoding.
func (s *apiServer) createCRD(t *testing.T, group, kind, plural string) {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group": group, "scope": "Namespaced",
			"names": map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind), "listKind": kind + "List"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if _, err := s.resource(t, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "").Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.mapper(t).RESTMapping(schema.GroupKind{Group: group, Kind: kind}, "v1"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD %s.%s is not served after 30 s", plural, group)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cachedDiscovery adapts a discovery client to the mapper without caching,
// so that new CRDs are seen at once.
type cachedDiscovery struct{ *discovery.DiscoveryClient }

func (cachedDiscovery) Fresh() bool { return true }
func (cachedDiscovery) Invalidate() {}
