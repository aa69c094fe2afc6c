//! Which fault plan a request draws from: its app's own, when a test set one, otherwise the
//! global plan. A request's app is the bearer token's app for Graph and the `client_id` for the
//! token endpoint; a request with neither uses the global plan.

use std::collections::HashMap;

use crate::faults::{FaultInjector, FaultPlan};

#[derive(Debug, Default)]
pub struct FaultPlans {
    global: FaultInjector,
    /// By lower-cased client id.
    by_app: HashMap<String, FaultInjector>,
}

impl FaultPlans {
    pub fn set_global(&mut self, plan: FaultPlan) {
        self.global.set(plan);
    }

    pub fn global(&self) -> FaultPlan {
        self.global.plan()
    }

    pub fn set_for_app(&mut self, app_id: &str, plan: FaultPlan) {
        let mut injector = FaultInjector::default();
        injector.set(plan);
        self.by_app.insert(app_id.to_ascii_lowercase(), injector);
    }

    /// Returns whether the app had a plan of its own.
    pub fn clear_for_app(&mut self, app_id: &str) -> bool {
        self.by_app.remove(&app_id.to_ascii_lowercase()).is_some()
    }

    /// The app's own plan, with the part of its script not consumed yet.
    pub fn for_app(&self, app_id: &str) -> Option<FaultPlan> {
        self.by_app
            .get(&app_id.to_ascii_lowercase())
            .map(FaultInjector::plan)
    }

    /// The injector a request of `app_id` draws from.
    pub fn injector(&mut self, app_id: Option<&str>) -> &mut FaultInjector {
        let own = app_id.map(str::to_ascii_lowercase);
        match own {
            Some(app_id) if self.by_app.contains_key(&app_id) => {
                self.by_app.get_mut(&app_id).expect("checked a moment ago")
            }
            _ => &mut self.global,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{faults::Fault, operation::Operation};

    #[test]
    fn an_app_with_its_own_plan_does_not_draw_from_the_global_one() {
        let mut plans = FaultPlans::default();
        plans.set_global(FaultPlan::script([Fault::Internal]));
        plans.set_for_app("ABC", FaultPlan::script([Fault::Reset]));
        let mut draw = |app| plans.injector(app).draw(Operation::GetUser);
        assert_eq!(draw(Some("abc")), Some(Fault::Reset));
        assert_eq!(draw(Some("abc")), None);
        assert_eq!(draw(Some("other")), Some(Fault::Internal));
        assert_eq!(draw(None), None);
    }

    #[test]
    fn clearing_an_app_returns_it_to_the_global_plan() {
        let mut plans = FaultPlans::default();
        plans.set_global(FaultPlan::outage());
        plans.set_for_app("abc", FaultPlan::default());
        assert_eq!(plans.injector(Some("abc")).draw(Operation::Token), None);
        assert!(plans.clear_for_app("ABC"));
        assert!(!plans.clear_for_app("abc"));
        assert_eq!(plans.for_app("abc"), None);
        assert!(plans.injector(Some("abc")).draw(Operation::Token).is_some());
    }
}
