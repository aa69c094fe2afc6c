package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/kwok/pkg/apis/v1alpha1"
	"sigs.k8s.io/kwok/pkg/config"
	kwok "sigs.k8s.io/kwok/pkg/kwok/cmd"
	"sigs.k8s.io/kwok/pkg/log"
	"sigs.k8s.io/kwok/pkg/utils/signals"
)

// podReadyDelayAnnotation delays a pod's move to Running and Ready by a Go duration ("20s";
// "8760h" withholds readiness for good). It is the annotation KWOK's own general pod-ready stage
// reads, added here to the fast one, which otherwise makes pods Ready at once.
const podReadyDelayAnnotation = "pod-ready.stage.kwok.x-k8s.io/delay"

// runKwok is KWOK's controller (upstream cmd/kwok/main.go): it plays the Stages of its --config on
// the nodes it manages and on the pods bound to them, as a kubelet would report them.
func runKwok() int {
	// The Kubernetes components linked into this binary register `--version` (not a bool) on
	// pflag's global set, which cobra merges into every command; KWOK's cobra command declares its
	// own boolean one and fails on the clash. KWOK reads none of those global flags.
	pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)

	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}

	ctx := signals.SetupSignalContext()
	ctx, logger := log.InitFlags(ctx, flagset)
	ctx, err := config.InitFlags(ctx, flagset)
	if err != nil {
		logger.Error("Init config flags", "err", err)
		return 1
	}
	command := kwok.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(flagset)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("Execute exit", "err", err)
		return 1
	}
	return 0
}

// writeKwokStages writes the Stages that kwokctl gives a cluster by default (node initialize and
// heartbeat with lease; pod ready, complete, delete, all without delay), with the pod-ready stage
// honouring podReadyDelayAnnotation. KWOK's controller reads them with --config.
func writeKwokStages(out io.Writer) error {
	sources := []string{
		nodefast.DefaultNodeInit,
		nodeheartbeat.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for i, source := range sources {
		var stage v1alpha1.Stage
		if err := yaml.UnmarshalStrict([]byte(source), &stage); err != nil {
			return fmt.Errorf("KWOK's embedded stage %d: %w", i, err)
		}
		if stage.Name == "pod-ready" {
			stage.Spec.Delay = &v1alpha1.StageDelay{
				DurationMilliseconds: new(int64(0)),
				DurationFrom: &v1alpha1.ExpressionFrom{
					ExpressionFrom: fmt.Sprintf(".metadata.annotations[%q]", podReadyDelayAnnotation),
				},
			}
		}
		text, err := yaml.Marshal(&stage)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(out, "---\n%s", text); err != nil {
			return err
		}
	}
	return nil
}

func runKwokStages() int {
	if err := writeKwokStages(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
