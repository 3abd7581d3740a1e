// memdiag/detail/env_impl.hpp - the definitions behind env.hpp, for
// memdiag/implementation.hpp: the report's text and JSON
// (detail/env_report_impl.hpp), the collectors (detail/env_collect_impl.hpp)
// and the checks (detail/env_checks_impl.hpp).
#pragma once

#include "env_checks_impl.hpp"
#include "env_collect_impl.hpp"
#include "env_report_impl.hpp"
