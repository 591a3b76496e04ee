// Package validate checks twosell's deployment files offline, with the
// loaders of the systems that read them, and against the binary itself:
//
//   - docker-compose.yml through the Compose specification's own loader
//     (compose-go), with the default environment and with the switch to the
//     real API;
//   - every manifest of deploy/k8s strictly into the Kubernetes API types
//     (unknown fields rejected), the KEDA ScaledObject against the
//     openAPIV3Schema of KEDA's CRD and the kafka trigger against KEDA's
//     generated scaler schema, both read from KEDA's Go module;
//   - the references between them: ports, probe paths, secret keys, topic
//     and group names, and every flag the containers pass, which must be in
//     "twosell run --help" and give a configuration "twosell run
//     --print-config" accepts;
//   - deploy/Dockerfile: multi-stage, static, non-root, distroless, and
//     copying every package of the module the binary imports;
//   - the Grafana dashboard and the Prometheus alert rules (Prometheus' own
//     rule parser and PromQL parser): every metric they query must be in
//     the /metrics of a real "twosell run".
//
// The tests build ../../cmd/twosell and run it; nothing needs Docker or a
// cluster. It is a module of its own so that compose-go, the Kubernetes
// types and Prometheus never enter the binary's go.mod; run its tests with
// (cd deploy/validate && go test ./...), as .ci/run does.
package validate
