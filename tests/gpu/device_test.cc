#include "gpu/device.h"

#include "gtest/gtest.h"

namespace strata::gpu {
namespace {

TEST(GpuDevice, ListsDevicesOrSaysWhyNot) {
  auto devices = ListDevices();
  if (!BuiltWithCuda()) {
    EXPECT_TRUE(absl::IsUnavailable(devices.status())) << devices.status();
    GTEST_SKIP() << "built without CUDA";
  }
  ASSERT_TRUE(devices.ok()) << devices.status();
  if (devices->empty()) GTEST_SKIP() << "no CUDA device on this machine";
  for (const DeviceInfo& d : *devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.memory_bytes, 0u);
    EXPECT_GE(d.compute_major, 1);
  }
}

}  // namespace
}  // namespace strata::gpu
