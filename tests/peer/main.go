// The ESO controller binary, exactly as ESO's own main.go builds it.
package main

import "github.com/external-secrets/external-secrets/cmd/controller"

func main() {
	controller.Execute()
}
