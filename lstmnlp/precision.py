"""Where and in what precision to compute: the device, and whether to autocast to bf16 or fp16.

Shared by training (the Trainer) and decoding (`translate --precision`), so that both make the
same choice and a CPU that cannot run bf16 is refused in one place.
"""

from __future__ import annotations

import torch

from lstmnlp.errors import UserError


def pick_device(name: str) -> torch.device:
    """`auto`: CUDA where there is one, else the CPU; any other name as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether the hardware computes bf16 natively: AVX-512 BF16 or AMX CPUs, bf16 GPUs."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bf16: always for `bf16`; for `auto`, only where the hardware has
    native bf16; elsewhere emulation would be slower. `bf16` on a CPU without it is refused:
    PyTorch's fused LSTM kernel (oneDNN) cannot run bf16 there at all."""
    if precision == "fp32":
        return False
    native = native_bf16(device)
    if precision == "bf16" and device.type == "cpu" and not native:
        raise UserError("precision bf16: this CPU has no native bf16 (AVX-512 BF16 or AMX), and "
                        "PyTorch's LSTM kernel cannot run bf16 without it; use auto or fp32")
    return precision == "bf16" or native


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Training's autocast type for `train.precision`, None for fp32. `fp16` (with a gradient
    scaler, for GPUs without fast bf16) is refused on a CPU, where PyTorch's LSTM kernel has no
    fp16 path."""
    if precision == "fp16":
        if device.type == "cpu":
            raise UserError("precision fp16 is for CUDA GPUs: PyTorch's CPU LSTM kernel cannot run fp16; "
                            "use auto or fp32")
        return torch.float16
    return torch.bfloat16 if use_bf16(precision, device) else None
