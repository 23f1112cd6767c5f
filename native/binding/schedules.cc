// exports.schedules: the pure planning decisions of the schedules, for tests and tools (what pipelining
// LV-XAttn picks for a problem on a given link), without an engine or a transport.
#include <napi.h>

#include "binding/areas.h"
#include "binding/common.h"
#include "binding/kernels_args.h"
#include "core/error.h"
#include "core/lv_plan.h"
#include "core/piece_order.h"

namespace xattn::binding {
namespace {

// lvPlan({dims, lqTotal, lkvTotal, world, rank, masked, pass: 'forward'|'backward', linkGbps,
// flopsPerSecond, bwdKvRowsPerWave, partials, queryKept, gather (forces LvPlan::gathered where it can be, as
// $XATTN_LV_GATHER does)}) -> {chunks, ownBlock: 'whole'|'batch'|'kv', firstBatches,
// firstKvRows, partials: 'float32'|'float16', stackLast, gathered, inputsTogether}
Napi::Value LvPlanOf(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    require(info.Length() == 1 && info[0].IsObject(), ErrorCode::InvalidArgument, "lvPlan expects one object");
    const Napi::Object o = info[0].As<Napi::Object>();
    require(o.Has("dims"), ErrorCode::InvalidArgument, "dims is required");
    DistProblem pb;
    pb.dims = read_dims(o.Get("dims"));
    pb.lq_total = require_int(o, "lqTotal");
    pb.lkv_total = require_int(o, "lkvTotal");
    pb.link_gbps = get_number(o, "linkGbps", 0);
    pb.partials = parse_partials(get_string(o, "partials", "auto"));
    if (o.Has("gather") && !o.Get("gather").IsUndefined()) pb.gather = o.Get("gather").ToBoolean().Value() ? 1 : 0;
    const int64_t world = require_int(o, "world"), rank = get_int(o, "rank", 0);
    require(pb.lq_total >= 1 && pb.lkv_total >= 1, ErrorCode::InvalidArgument, "lqTotal and lkvTotal must be >= 1");
    require(world >= 1 && rank >= 0 && rank < world, ErrorCode::InvalidArgument, "need 0 <= rank < world");
    const std::string pass = get_string(o, "pass", "forward");
    require(pass == "forward" || pass == "backward", ErrorCode::InvalidArgument,
            "pass must be 'forward' or 'backward', got '" + pass + "'");
    const bool masked = o.Has("masked") && o.Get("masked").ToBoolean().Value();
    const LvPlan plan = plan_lv(pb, static_cast<int>(world), static_cast<int>(rank), masked,
                                pass == "forward" ? LvPass::Forward : LvPass::Backward,
                                {get_number(o, "flopsPerSecond", 0), get_number(o, "bwdKvRowsPerWave", 0)},
                                o.Has("queryKept") && o.Get("queryKept").ToBoolean().Value());
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("chunks", plan.chunks);
    out.Set("ownBlock", plan.split.second.empty() ? "whole" : plan.split.along_kv ? "kv" : "batch");
    out.Set("firstBatches", static_cast<double>(plan.split.first.batches));
    out.Set("firstKvRows", static_cast<double>(plan.split.first.kv_rows));
    out.Set("partials", plan.partials == PartialPrecision::Float16 ? "float16" : "float32");
    out.Set("stackLast", plan.stack_last);
    out.Set("gathered", plan.gathered);
    out.Set("inputsTogether", plan.inputs_together);
    return out;
  });
}

// pieceOrder({jobs: [{send, peer, pieces}], slots}) -> [[job, piece], ...]: how a batch of copy-engine
// transfers queues its pieces (core/piece_order.h).
Napi::Value PieceOrderOf(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    require(info.Length() == 1 && info[0].IsObject(), ErrorCode::InvalidArgument, "pieceOrder expects one object");
    const Napi::Object o = info[0].As<Napi::Object>();
    require(o.Get("jobs").IsArray(), ErrorCode::InvalidArgument, "jobs must be an array");
    const Napi::Array arr = o.Get("jobs").As<Napi::Array>();
    std::vector<PieceJob> jobs;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      require(arr.Get(i).IsObject(), ErrorCode::InvalidArgument, "each job must be an object");
      const Napi::Object j = arr.Get(i).As<Napi::Object>();
      const int64_t pieces = require_int(j, "pieces");
      require(pieces >= 0, ErrorCode::InvalidArgument, "pieces must be >= 0");
      jobs.push_back({j.Get("send").ToBoolean().Value(), static_cast<int>(require_int(j, "peer")), static_cast<size_t>(pieces)});
    }
    const auto order = piece_order(jobs, static_cast<int>(require_int(o, "slots")));
    Napi::Array out = Napi::Array::New(info.Env(), order.size());
    for (size_t i = 0; i < order.size(); ++i) {
      Napi::Array step = Napi::Array::New(info.Env(), 2);
      step.Set(0u, static_cast<double>(order[i].job));
      step.Set(1u, static_cast<double>(order[i].piece));
      out.Set(static_cast<uint32_t>(i), step);
    }
    return out;
  });
}

}  // namespace

void InitSchedules(Napi::Env env, Napi::Object exports) {
  Napi::Object s = Napi::Object::New(env);
  s.Set("lvPlan", Napi::Function::New(env, LvPlanOf, "lvPlan"));
  s.Set("pieceOrder", Napi::Function::New(env, PieceOrderOf, "pieceOrder"));
  exports.Set("schedules", s);
}

}  // namespace xattn::binding
