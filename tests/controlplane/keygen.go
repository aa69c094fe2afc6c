package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// runKeygen writes a fresh RSA private key in PEM, used to sign and verify service-account tokens,
// so that tests need no openssl on the machine.
func runKeygen(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: controlplane keygen <out.pem>")
		return 2
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keygen: %v\n", err)
		return 1
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if err := os.WriteFile(args[0], pem.EncodeToMemory(block), 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "keygen: %v\n", err)
		return 1
	}
	return 0
}
