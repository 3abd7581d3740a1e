// memdiag/detail/background_handle.hpp - the move-only handle of one background
// worker (the pprof endpoint's server, a periodic dump's thread).
#pragma once

#include "../config.hpp"
#include "../result.hpp"

namespace memdiag {
namespace detail {

/// Owns one worker, or holds the reason there is none. Worker's namespace
/// declares `void destroy_worker(Worker*) noexcept` (stop its thread, destroy
/// and free it); stop() calls it, so Worker may stay an incomplete type here
/// (its definition can live in the implementation unit). Move-only; the destructor stops. Every operation is noexcept.
/// The public classes derive from it (their friends start the worker: they set
/// impl_ and status_).
template <class Worker>
class background_handle {
public:
    /// Not running; status() says so.
    background_handle() noexcept : status_(result::failure("not started")) {}
    /// Takes the worker; `o` is left not running ("moved from").
    background_handle(background_handle&& o) noexcept : impl_(o.impl_), status_(o.status_) { o.forget(); }
    /// Stops this worker, then takes `o`'s.
    background_handle& operator=(background_handle&& o) noexcept {
        if (this != &o) {
            stop();
            impl_ = o.impl_;
            status_ = o.status_;
            o.forget();
        }
        return *this;
    }
    background_handle(const background_handle&) = delete;
    background_handle& operator=(const background_handle&) = delete;
    ~background_handle() { stop(); }

    /// True while the worker's thread runs.
    bool running() const noexcept { return impl_ != nullptr; }
    /// Same as running().
    explicit operator bool() const noexcept { return running(); }
    /// Success while running; otherwise why not (bad argument, stopped, not
    /// supported here...).
    const result& status() const noexcept { return status_; }
    /// Stops the worker and joins its thread. Idempotent.
    void stop() noexcept {
        if (impl_ == nullptr) return;
        destroy_worker(impl_);  // found by argument-dependent lookup, beside Worker
        impl_ = nullptr;
        status_ = result::failure("stopped");
    }

protected:
    Worker* impl_ = nullptr;  ///< the running worker, or nullptr
    result status_;           ///< why it is not running (success while it runs)

private:
    void forget() noexcept {
        impl_ = nullptr;
        status_ = result::failure("moved from");
    }
};

}  // namespace detail
}  // namespace memdiag
