package k8stest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

// checkPod returns the `helm test` pod of m (check.test) and its check
// container, or nil.
func (m manifest) checkPod(t testing.TB) (*object, *corev1.Pod, *corev1.Container) {
	t.Helper()
	for i, o := range m {
		if p, ok := o.Obj.(*corev1.Pod); ok && p.Annotations["helm.sh/hook"] == "test" {
			c := container(&p.Spec, "check")
			if c == nil {
				t.Fatalf("%s: no check container", o)
			}
			return &m[i], p, c
		}
	}
	return nil, nil, nil
}

// TestCheckPodMatchesEdge renders every documented combination and checks
// that `shoal check` runs with exactly the edge's flags and environment:
// in the `helm test` pod (with --outside) and, when check.initContainer is
// on, in the edge's init container (with --remote-warnings), each with the
// volumes those flags name, hardened like the edge. The test pod is a test
// hook that no Service or PodDisruptionBudget selects and that the
// NetworkPolicy lets reach the peer port and the reference origin.
func TestCheckPodMatchesEdge(t *testing.T) {
	t.Parallel()
	cases := map[string][]string{}
	for name, file := range ciValues(t) {
		cases[name] = []string{"-f", file}
		cases[name+"+init"] = []string{"-f", file, "--set", "check.initContainer=true"}
	}
	for name, values := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := render(t, values...)
			p, edge := m.edge(t)
			init := container(&p.Template.Spec, "check")
			// everything-values.yaml turns it on.
			if wantInit := strings.HasSuffix(name, "+init") || name == "everything"; (init != nil) != wantInit {
				t.Fatalf("check init container rendered: %v, want %v", init != nil, wantInit)
			}
			o, pod, test := m.checkPod(t)
			if pod == nil {
				t.Fatal("no helm test pod")
			}
			if pod.Annotations["helm.sh/hook-delete-policy"] != "before-hook-creation" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("%s: hook-delete-policy %q, restartPolicy %q", o, pod.Annotations["helm.sh/hook-delete-policy"], pod.Spec.RestartPolicy)
			}
			sameAsEdge(t, "helm test pod", edge, test, "--outside")
			checkVolumes(t, "helm test pod", test, &pod.Spec, &p.Template.Spec)
			if init != nil {
				sameAsEdge(t, "init container", edge, init, "--remote-warnings")
				if i := slices.IndexFunc(p.Template.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == "check" }); i != len(p.Template.Spec.InitContainers)-1 {
					t.Errorf("the check init container is not the last one (it reads the zone file the zone init container writes)")
				}
			}
			if z := container(&p.Template.Spec, "zone"); z != nil {
				if tz := container(&pod.Spec, "zone"); tz == nil || !reflect.DeepEqual(*tz, *z) {
					t.Errorf("helm test pod: zone init container %+v, want the edge's", tz)
				}
			}
			for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
				if sc := c.SecurityContext; sc == nil || !reflect.DeepEqual(sc, edge.SecurityContext) {
					t.Errorf("helm test pod: container %s: securityContext %+v, want the edge's", c.Name, sc)
				}
				if c.Resources.Limits.Memory().IsZero() {
					t.Errorf("helm test pod: container %s: no memory limit", c.Name)
				}
			}
			spec := &pod.Spec
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken || spec.EnableServiceLinks == nil || *spec.EnableServiceLinks ||
				!reflect.DeepEqual(spec.SecurityContext, p.Template.Spec.SecurityContext) || spec.ServiceAccountName != p.Template.Spec.ServiceAccountName {
				t.Errorf("helm test pod: token, service links, securityContext or ServiceAccount differ from the edge's")
			}
			if selects(p.Template.Labels, pod.Labels) {
				t.Errorf("helm test pod has the edges' labels: Services would send it traffic")
			}
			for _, s := range m.all("Service") {
				if selects(s.Obj.(*corev1.Service).Spec.Selector, pod.Labels) {
					t.Errorf("%s selects the helm test pod", s)
				}
			}
			for _, np := range m.all("NetworkPolicy") {
				checkPolicyAdmits(t, np.Obj.(*networkingv1.NetworkPolicy), pod.Labels)
			}
		})
	}
	t.Run("test-off", func(t *testing.T) {
		t.Parallel()
		if _, pod, _ := render(t, "-f", ciValues(t)["origin"], "--set", "check.test=false").checkPod(t); pod != nil {
			t.Errorf("check.test=false renders the helm test pod")
		}
	})
}

// sameAsEdge checks that c runs `shoal check` with edge's flags, then
// flag, and edge's environment.
func sameAsEdge(t *testing.T, what string, edge, c *corev1.Container, flag string) {
	t.Helper()
	want := append([]string{"check"}, edge.Args[1:]...)
	want = append(want, flag)
	if !slices.Equal(c.Args, want) {
		t.Errorf("%s: args\n%q\nwant the edge's with %s:\n%q", what, c.Args, flag, want)
	}
	if !reflect.DeepEqual(c.Env, edge.Env) || c.Image != edge.Image || len(c.Command) != 0 {
		t.Errorf("%s: env, image or command differ from the edge's:\n%+v\n%+v", what, c.Env, edge.Env)
	}
}

// checkVolumes checks that c has every mount of edge's container but the
// data and scratch volumes, from volumes equal to the edge pod's.
func checkVolumes(t *testing.T, what string, c *corev1.Container, spec, edgeSpec *corev1.PodSpec) {
	t.Helper()
	edge := container(edgeSpec, "edge")
	var want []corev1.VolumeMount
	for _, vm := range edge.VolumeMounts {
		if vm.Name != "data" && vm.Name != "tmp" {
			want = append(want, vm)
		}
	}
	if !reflect.DeepEqual(c.VolumeMounts, want) {
		t.Errorf("%s: mounts %+v, want the edge's %+v", what, c.VolumeMounts, want)
	}
	for _, vm := range c.VolumeMounts {
		if v, ev := volume(spec, vm.Name), volume(edgeSpec, vm.Name); v == nil || ev == nil || !reflect.DeepEqual(v, ev) {
			t.Errorf("%s: volume %s is %+v, the edge's %+v", what, vm.Name, v, ev)
		}
	}
}

// checkPolicyAdmits checks that np, if it selects the edges, admits pods
// with labels to the peer port over UDP, and if it selects the reference
// origin, to its port.
func checkPolicyAdmits(t *testing.T, np *networkingv1.NetworkPolicy, labels map[string]string) {
	t.Helper()
	port := map[string]string{"edge": "peer", "origin": "http"}[np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"]]
	for _, r := range np.Spec.Ingress {
		from := slices.ContainsFunc(r.From, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.PodSelector != nil && selects(p.PodSelector.MatchLabels, labels)
		})
		if from && slices.ContainsFunc(r.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port.StrVal == port }) {
			return
		}
	}
	t.Errorf("NetworkPolicy %s does not admit the helm test pod to port %s", np.Name, port)
}

// TestRenderedCheckRuns runs the rendered `helm test` pod's command with
// the shoal binary against a running rendered edge and the reference
// origin (gossip membership, whose peers Service stands for the edge's
// address): exit 0, the edge dialled over the peer protocol with the
// chart's certificates and its layout agreeing; and the init container's
// command (--remote-warnings) exits 0 with no edge running.
func TestRenderedCheckRuns(t *testing.T) {
	t.Parallel()
	ports := freePorts(t, 5)
	httpPort, peer, admin, originPort, gossip := ports[0], ports[1], ports[2], ports[3], ports[4]
	m := render(t, "-f", ciValues(t)["origin"], "--set", "check.initContainer=true",
		"--set", fmt.Sprintf("edge.ports.http=%d,edge.ports.peer=%d,edge.ports.admin=%d,edge.ports.gossip=%d", httpPort, peer, admin, gossip),
		"--set", fmt.Sprintf("referenceOrigin.port=%d", originPort),
		"--set", "edge.drainDelay=500ms,edge.drainTimeout=5s,edge.logFormat=text")
	dir := t.TempDir()
	p, edgeC := m.edge(t)
	fv := fieldValues{PodName: "shoal-edge-0", PodIP: "127.0.0.1", HostIP: "127.0.0.1"}

	// The init container, before its edge starts: no peer answers yet, and
	// the origin neither; both are warnings.
	initOut, code := runToEnd(t, materialize(t, m, p, container(&p.Template.Spec, "check"), fv, filepath.Join(dir, "init")))
	if code != 0 || !strings.Contains(initOut, "ok    certificate peer: ") || !strings.Contains(initOut, "(a warning under --remote-warnings)") {
		t.Errorf("the check init container exited %d, want 0 with warnings for peers and origin:\n%s", code, initOut)
	}

	for _, op := range m.podTemplates() {
		if c := container(&op.Template.Spec, "origin"); c != nil {
			origin := start(t, materialize(t, m, op, c, fieldValues{PodName: "shoal-origin-0", PodIP: "127.0.0.1"}, filepath.Join(dir, "origin")))
			waitHTTP(t, origin, fmt.Sprintf("http://127.0.0.1:%d/hello.txt", originPort), 200)
		}
	}
	edge := start(t, materialize(t, m, p, edgeC, fv, filepath.Join(dir, "edge")))
	waitHTTP(t, edge, fmt.Sprintf("http://127.0.0.1:%d/readyz", admin), 200)

	o, pod, c := m.checkPod(t)
	tp := podTemplate{Owner: *o, Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}}
	out, code := runToEnd(t, materialize(t, m, tp, c, fieldValues{PodName: "shoal-check", PodIP: "127.0.0.1", HostIP: "127.0.0.1"}, filepath.Join(dir, "test")))
	want := fmt.Sprintf("ok    peer 127.0.0.1:%d: connected with mutual TLS, layout agrees", peer)
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "ok    origin: ") || strings.Contains(out, "error") {
		t.Errorf("the helm test pod's check exited %d, want 0 with %q:\n%s", code, want, out)
	}
	edge.stop(t, time.Duration(*p.Template.Spec.TerminationGracePeriodSeconds)*time.Second)
}

// runToEnd runs p as a pod at 127.0.0.1 (startAt) until it exits, and
// returns its output and exit status.
func runToEnd(t *testing.T, p pod) (string, int) {
	t.Helper()
	pr := startAt(t, p, "127.0.0.1", "127.0.0.1")
	select {
	case err := <-pr.done:
		pr.done <- err
	case <-time.After(60 * time.Second):
		t.Fatalf("shoal %v still running after 60 s", p.Args)
	}
	return pr.out.String(), pr.cmd.ProcessState.ExitCode()
}

// unstructured returns o as the dynamic client takes it.
func (o object) unstructured(t testing.TB) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal(o.Raw, &u.Object); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	return u
}

// TestRenderedContainerdHostsRuns runs the containerd-hosts init container
// of the daemonset-containerd values as the kubelet would (its env and
// hostPath volume materialized): it writes the node's hosts.toml with the
// node's edge as the registry's mirror, and the registry as the fallback.
func TestRenderedContainerdHostsRuns(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", ciValues(t)["daemonset-containerd"])
	p, _ := m.edge(t)
	c := container(&p.Template.Spec, "containerd-hosts")
	if c == nil {
		t.Fatal("no containerd-hosts init container")
	}
	pd := materialize(t, m, p, c, fieldValues{PodName: "shoal-edge-x", PodIP: "10.1.0.7", HostIP: "192.0.2.7"}, t.TempDir())
	out, code := runToEnd(t, pd)
	if code != 0 {
		t.Fatalf("containerd-hosts exited %d:\n%s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(pd.Mounts["/host/containerd-certs.d"], "registry.example.com:5000", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`server = "http://registry.example.com:5000"`, `[host."http://192.0.2.7:30080"]`, `capabilities = ["pull"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("hosts.toml lacks %q:\n%s", want, b)
		}
	}
}
