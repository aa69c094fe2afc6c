// Command controlplane is a multi-call binary holding the parts of a real Kubernetes control plane
// that the operator's tests need: etcd, kube-apiserver, kube-controller-manager and kubectl, and for
// tests that run workloads, kube-scheduler and KWOK (fake nodes whose pods become Running and Ready).
// Each runs as its own process (`controlplane <component> [flags]`), as envtest runs them, because
// two components in one process collide on global state (feature gates, klog flags, metrics).
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: controlplane etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok|kwok-stages|kubectl|keygen [flags]")
		os.Exit(2)
	}
	exitWithParent()
	component := os.Args[1]
	// cobra reads os.Args[1:], so drop the component name as if the binary were called by it.
	os.Args = append([]string{component}, os.Args[2:]...)
	switch component {
	case "keygen":
		os.Exit(runKeygen(os.Args[1:]))
	case "etcd":
		os.Exit(runEtcd(os.Args[1:]))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kwok":
		os.Exit(runKwok())
	case "kwok-stages":
		os.Exit(runKwokStages())
	case "kubectl":
		// As upstream kubectl does: errors are printed by CheckErr, which also picks the exit code.
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown component %q\n", component)
		os.Exit(2)
	}
}
