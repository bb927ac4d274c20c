//! One LoRA step on SmolLM2 against PyTorch + PEFT (`scripts/make-peft-golden`, committed
//! golden `tests/golden/peft_step.json`): PEFT loaded the adapter as `tierforge export --format
//! peft` wrote it, onto the same GGUF dequantized by transformers, and computed the loss on the
//! assistant's tokens of one conversation, the LoRA gradients and the logits. Here the same
//! adapter (a fixed formula) is attached to our dense model, trainable, on the same token ids.
//!
//! Tolerances: loss within 1e-4 absolute (measured: 1.7e-5); logits within 2e-3 (f32 sums
//! over ~600 positions in a different order, attention included); gradients: norm within 0.5%
//! and each of the first 16 values within 1% of the tensor's largest listed value. Gradients
//! add up rounding over every position and layer above, so they agree less tightly than the loss.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use tierforge_model::{Kernels, LoadOptions, Proj};
use tierforge_train::lora::{Adapter, LoraParam, LoraShape};
use tierforge_train::trainer::loss_and_gradients;
use tierforge_train::Example;

mod common;
use common::model_path;

fn golden() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/peft_step.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("golden")).expect("golden json")
}

/// The adapter of `scripts/check-export` / `make-peft-golden`: rank 4 on every projection,
/// lora_A = 0.04·sin(0.37i + 1.3r + 0.11l + p), lora_B = 0.05·cos(0.23o + 0.7r + 0.17l + p),
/// `p` the projection's index in PEFT's target order.
fn formula_adapter(llama: &tierforge_model::Llama, rank: usize, alpha: f64) -> Adapter {
    let mut params = Vec::new();
    for layer in 0..llama.num_layers() {
        for (p, proj) in Proj::ALL.into_iter().enumerate() {
            let lin = llama.linear(layer, proj).expect("projection");
            let (fan_in, fan_out) = (lin.in_features(), lin.out_features());
            let (l, p) = (layer as f64, p as f64);
            let a: Vec<f32> = (0..rank * fan_in)
                .map(|k| {
                    let (r, i) = ((k / fan_in) as f64, (k % fan_in) as f64);
                    (0.04 * (0.37 * i + 1.3 * r + 0.11 * l + p).sin()) as f32
                })
                .collect();
            let b: Vec<f32> = (0..fan_out * rank)
                .map(|k| {
                    let (o, r) = ((k / rank) as f64, (k % rank) as f64);
                    (0.05 * (0.23 * o + 0.7 * r + 0.17 * l + p).cos()) as f32
                })
                .collect();
            let var = |v: Vec<f32>, shape: (usize, usize)| {
                Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor"))
                    .expect("var")
            };
            params.push(LoraParam {
                layer,
                proj,
                a: var(a, (rank, fan_in)),
                b: var(b, (fan_out, rank)),
            });
        }
    }
    Adapter {
        shape: LoraShape {
            rank,
            alpha,
            dropout: 0.0,
            rslora: false,
            targets: Proj::ALL.to_vec(),
        },
        params,
    }
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn one_step_matches_pytorch_peft_on_an_adapter_we_exported() {
    let g = golden();
    let mut m = tierforge_model::load(&model_path().display().to_string(), &LoadOptions::default())
        .expect("model loads");
    let meta = &g["meta"]["adapter"];
    let adapter = formula_adapter(
        &m.llama,
        meta["rank"].as_u64().expect("rank") as usize,
        meta["alpha"].as_f64().expect("alpha"),
    );
    adapter.attach(&mut m.llama, None).expect("attach");
    m.llama.set_kernels(Kernels::Composed);

    let ids: Vec<u32> = g["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect();
    let from = g["supervised_from"].as_u64().expect("supervised_from") as usize;
    let example = Example {
        id: "golden".into(),
        supervised: (0..ids.len()).map(|i| i >= from).collect(),
        ids: ids.clone(),
    };
    let (loss, grads) = loss_and_gradients(&m.llama, &adapter, &[&example], 0).expect("step");
    let want = g["loss"].as_f64().expect("loss");
    assert!(
        (loss - want).abs() < 1e-4,
        "loss {loss:.6} vs PEFT's {want:.6}"
    );

    let mut checked = 0;
    for (name, w) in g["grads"].as_object().expect("grads") {
        let got = grads
            .get(name)
            .unwrap_or_else(|| panic!("no gradient for {name}"))
            .to_dtype(DType::F64)
            .expect("f64");
        let norm = got
            .sqr()
            .expect("sqr")
            .sum_all()
            .expect("sum")
            .to_scalar::<f64>()
            .expect("norm")
            .sqrt();
        let want_norm = w["norm"].as_f64().expect("norm");
        assert!(
            (norm - want_norm).abs() <= 5e-3 * want_norm,
            "{name}: gradient norm {norm:.6e} vs PEFT's {want_norm:.6e}"
        );
        let first = got
            .flatten_all()
            .expect("flat")
            .to_vec1::<f64>()
            .expect("values");
        let want_first = f64s(&w["first"]);
        let scale = want_first.iter().fold(0f64, |a, x| a.max(x.abs()));
        for (i, (a, b)) in first.iter().zip(&want_first).enumerate() {
            assert!(
                (a - b).abs() <= 1e-2 * scale,
                "{name}[{i}]: {a:.6e} vs PEFT's {b:.6e}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} gradients in the golden");

    let logits = m
        .llama
        .forward(
            &Tensor::new(ids.as_slice(), &Device::Cpu)
                .expect("ids")
                .unsqueeze(0)
                .expect("batch"),
            None,
        )
        .expect("forward")
        .squeeze(0)
        .expect("squeeze");
    for pos in g["logits"].as_array().expect("logits") {
        let p = pos["position"].as_u64().expect("position") as usize;
        let row = logits
            .get(p)
            .expect("row")
            .to_vec1::<f32>()
            .expect("values");
        for (key_ids, key_vals) in [("top_ids", "top_logits"), ("fixed_ids", "fixed_logits")] {
            let ids = pos[key_ids].as_array().expect("ids");
            for (id, want) in ids.iter().zip(f64s(&pos[key_vals])) {
                let got = row[id.as_u64().expect("id") as usize] as f64;
                assert!(
                    (got - want).abs() < 2e-3,
                    "position {p}, token {id}: logit {got:.5} vs PEFT's {want:.5}"
                );
            }
        }
        let argmax = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u64);
        assert_eq!(argmax, pos["top_ids"][0].as_u64(), "position {p}: argmax");
    }
}
