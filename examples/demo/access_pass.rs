//! The demo's Temporary Access Pass lease: a pass Entra creates and ends on its own, so the
//! credential dies at its lifetime whatever becomes of the operator.

use std::time::Duration;

use super::shell::{Kubectl, note};
use super::stack::Stack;
use super::{NAMESPACE, judge_sign_in, secret_value, wait};

/// A pass pool over bob (free again since his lease was revoked) and a one-hour lease of it.
const MANIFEST: &str = "\
apiVersion: kms.hanzo.ai/v1alpha1
kind: EntraDynamicSecret
metadata:
  name: contoso-passes
spec:
  tenantId: contoso.onmicrosoft.com
  applicationId: 3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d
  clientSecretRef:
    name: entra-app
  users: [bob@contoso.onmicrosoft.com]
  credentialType: TemporaryAccessPass
  defaultTTL: 1h
  maxTTL: 8h
---
apiVersion: kms.hanzo.ai/v1alpha1
kind: EntraLease
metadata:
  name: break-glass
spec:
  dynamicSecretRef:
    name: contoso-passes
";

pub fn access_pass_lease(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    super::heading("11. A Temporary Access Pass: a credential whose end Entra enforces");
    kubectl.show_with_input(&["apply", "-n", NAMESPACE, "-f", "-"], MANIFEST)?;
    wait(
        stack,
        kubectl,
        &[
            "--for=jsonpath={.status.phase}=Active",
            "entralease/break-glass",
        ],
    )?;
    kubectl.entra(&["creds", "break-glass", "-n", NAMESPACE, "--show-password"])?;
    note("^ Entra made the pass; expiresAt is its start plus its hour, and no renewal moves it");
    let key = |key: &str| secret_value(kubectl, NAMESPACE, "entra-break-glass", key);
    let (username, pass) = (key("username")?, key("temporaryAccessPass")?);
    let signs_in = |stack: &Stack| stack.emulator().pass_is_live(&username, &pass);
    judge_sign_in(&username, "the pass", signs_in(stack), true)?;
    // The operator's clock stays put, so it cannot be what ends the pass.
    note("Entra's clock (the emulator's) moves on an hour; the operator's does not");
    stack.emulator().advance_clock(Duration::from_secs(61 * 60));
    judge_sign_in(&username, "the pass", signs_in(stack), false)?;
    note("^ Entra ended the pass itself: no operator had to be up for this credential to end");
    Ok(())
}
