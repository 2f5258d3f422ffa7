package k8stest

import (
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestZoneScript runs the zone init container's script, as rendered, with
// this machine's sh and curl against a fake API server: it must write the
// node's zone label to the file the edge mounts, an empty line when the
// node has none, and fail with a clear message when the API refuses.
func TestZoneScript(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"sh", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missingTool(t, "%s not found (the zone script needs sh and curl, like its image)", tool)
		}
	}
	m := render(t, "-f", ciValues(t)["zone"])
	p, _ := m.edge(t)
	c := container(&p.Template.Spec, "zone")
	if c == nil || len(c.Command) != 2 || c.Command[0] != "sh" || len(c.Args) != 1 {
		t.Fatalf("zone init container: want command [sh -c] and the script as its one argument, got %+v", c)
	}
	var saMount string
	for _, vm := range c.VolumeMounts {
		if volume(&p.Template.Spec, vm.Name).Projected != nil {
			saMount = vm.MountPath
		}
	}
	if saMount != "/var/run/secrets/kubernetes.io/serviceaccount" {
		t.Errorf("the token is mounted at %q, not where the script reads it", saMount)
	}

	const token = "test-token"
	node := func(name string, labels map[string]string) []byte {
		n := corev1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager: "kubelet", Operation: "Update", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:topology.kubernetes.io/zone":{},"f:kubernetes.io/hostname":{}}}}`)},
			}}}}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"kind":"Status","message":"Unauthorized"}`, 401)
			return
		}
		switch r.URL.Path {
		case "/api/v1/nodes/node-a":
			w.Write(node("node-a", map[string]string{"kubernetes.io/hostname": "node-a", "topology.kubernetes.io/zone": "eu-west-1b", "topology.kubernetes.io/region": "eu-west-1"}))
		case "/api/v1/nodes/node-b":
			w.Write(node("node-b", map[string]string{"kubernetes.io/hostname": "node-b"}))
		default:
			http.Error(w, `{"kind":"Status","message":"nodes is forbidden: User cannot get resource"}`, 403)
		}
	}))
	defer api.Close()
	host, port, _ := net.SplitHostPort(api.Listener.Addr().String())

	sa := t.TempDir()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(sa, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte(token), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		node, want string
		fail       bool
	}{
		{"node-a", "eu-west-1b\n", false},
		{"node-b", "\n", false},
		{"node-c", "", true},
	} {
		t.Run(tc.node, func(t *testing.T) {
			zoneDir := t.TempDir()
			pd := materialize(t, m, p, c, fieldValues{NodeName: tc.node}, t.TempDir())
			cmd := exec.Command(c.Command[0], c.Command[1], pd.Args[0])
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port, "SA_DIR=" + sa}
			for _, e := range pd.Env {
				if strings.HasPrefix(e, "ZONE_FILE=") {
					e = "ZONE_FILE=" + filepath.Join(zoneDir, "zone")
				}
				cmd.Env = append(cmd.Env, e)
			}
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("the zone script hangs:\n%s", out)
			}
			got, rerr := os.ReadFile(filepath.Join(zoneDir, "zone"))
			if tc.fail {
				if err == nil || !strings.Contains(string(out), "ClusterRole") {
					t.Errorf("a forbidden Node: err %v, output %q; want a failure that names the ClusterRole", err, out)
				}
				return
			}
			if err != nil || rerr != nil || string(got) != tc.want {
				t.Errorf("zone file %q (%v), script %v:\n%s\nwant %q", got, rerr, err, out, tc.want)
			}
		})
	}
}
