//! Fuzz target: the YAML model loader (datastore parsing + policy conversion + model build +
//! evaluating one flow) never panics on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::rule::Protocol;
use policy::{Flow, Peer};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(docs) = datastore::resource::parse_documents(text) else { return };
    let Ok(model) = policy::convert::model_from_resources(&docs) else { return };
    let _ = policy::compile::compile(&model);
    if let (Some(a), Some(b)) = (model.endpoints().first(), model.endpoints().last()) {
        let flow = Flow::new(Peer::Endpoint(a.id.clone()), Peer::Endpoint(b.id.clone()), Protocol::TCP, Some(80));
        let _ = model.evaluate(&flow);
    }
});
