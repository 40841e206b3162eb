"""Data-parallel training across processes (``torchrun``): plain PyTorch DDP.

What: :func:`process_group` joins (or creates) the ``torch.distributed`` process group
of a ``torchrun`` launch and gives a :class:`Shard`, which says which segments of a
global batch this process trains on, wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel`, and sums per-process totals.
Why: ``batch_size`` stays the global batch whatever the number of processes; every
process draws the same permutation from the shared seed and takes a strided share of
each batch, so a fit on N processes follows nearly the same path as one on one.
A single process (no ``torchrun``) gets a :class:`Shard` that changes nothing.
"""

import inspect
import itertools
import os
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def launched_world_size():
    """Return the number of processes of this launch (1 without ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_device(device):
    """Return this process's device: ``"cuda"`` becomes its ``LOCAL_RANK`` GPU.

    In a launch of several processes, that GPU also becomes the current one (NCCL's
    collectives run there); a single process is left as it is.
    """
    if launched_world_size() > 1 and device.startswith("cuda"):
        if device == "cuda":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return device


@dataclass(frozen=True)
class Shard:
    """The place of this process in a data-parallel fit.

    Attributes
    ----------
    rank : int
        Index of this process.
    world_size : int
        Number of processes (1: a plain single-process fit).
    """

    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self):
        """Whether more than one process trains."""
        return self.world_size > 1

    def share(self, group):
        """Return this process's part of a global batch and its weight.

        Returns
        -------
        indices : list of int
            Every ``world_size``-th index of ``group`` from ``rank`` on; when that is
            empty, the first one (with weight 0: the process must still take part in
            the gradient's reduction).
        n_real : int
            How many of ``indices`` count.
        weight : float
            Factor of the local mean loss such that the average over processes that
            DDP takes is the mean over the global batch.
        """
        if not self.distributed:
            return group, len(group), 1.0
        local = group[self.rank :: self.world_size]
        if not local:
            return group[:1], 0, 0.0
        return local, len(local), len(local) * self.world_size / len(group)

    def split(self, groups):
        """Return this process's batches of a list of batches (every N-th)."""
        return groups[self.rank :: self.world_size] if self.distributed else groups

    def sum(self, value):
        """Return ``value`` summed over processes (itself in one process).

        ``value`` is a number, an array, a tensor, or a tuple, list or dict of those
        (dict keys may differ between processes). Every process gets the same
        result: the values are gathered and added in rank order.
        """
        if not self.distributed:
            return value
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, _to_cpu(value))
        total = gathered[0]
        for other in gathered[1:]:
            total = _add(total, other)
        return total

    def broadcast(self, value):
        """Return rank 0's ``value`` (any picklable object) on every process."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value):
        """Return the list of every process's ``value`` (``[value]`` in one)."""
        if not self.distributed:
            return [value]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, _to_cpu(value))
        return gathered

    def wrap(self, model):
        """Return ``model`` in DDP when distributed, else ``model`` itself.

        Heads of subjects without a segment in a batch get no gradient there, and
        not the same on every process: unused parameters are looked for. The
        buffers (lead fields, feature scaling) are constant while training: sent
        once when DDP starts, not at every step.
        """
        if not self.distributed:
            return model
        names = inspect.signature(DistributedDataParallel).parameters
        # recent torch renamed it (sync at init kept); older only has the old name
        sync = "forward_sync_buffers" if "forward_sync_buffers" in names else None
        return DistributedDataParallel(
            model,
            find_unused_parameters=True,
            **{sync or "broadcast_buffers": False},
        )

    def own_random_stream(self):
        """Give this process its own stream of torch's random numbers (dropout).

        Every process builds the network from the same seed; without a stream of
        its own, each one's excerpts of a batch would get rank 0's dropout masks.
        Rank 0 keeps its stream, so that one process trains as a plain fit does.
        """
        if self.rank:
            seed = np.random.SeedSequence([torch.initial_seed(), self.rank])
            torch.manual_seed(int(seed.generate_state(1)[0]))

    def sync_state(self, module):
        """Give every process rank 0's parameters and buffers of ``module``."""
        if self.distributed:
            with torch.no_grad():
                for tensor in module.state_dict().values():
                    dist.broadcast(tensor, src=0)


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _add(a, b):
    if isinstance(a, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _add(out[key], value) if key in out else value
        return out
    if isinstance(a, list | tuple):
        return type(a)(_add(x, y) for x, y in zip(a, b, strict=True))
    return a + b


# torch names the default group after a count it resets when the group is destroyed,
# so each group created in a launch would find the keys of the one before it in
# torchrun's store (a peer's closed address: a refused connection or a hang);
# every process creates its groups in the same order, so a count of its own gives
# each group a prefix of its own on all processes alike
_groups_created = itertools.count()


@contextmanager
def process_group(device="cpu"):
    """Join the process group of a ``torchrun`` launch; yield this process's Shard.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) a group is created
    from the environment when none is initialised (gloo on the CPU, NCCL on CUDA)
    and destroyed on exit; a group initialised by the caller is used and left alone.
    Otherwise a single-process :class:`Shard` is yielded.

    Parameters
    ----------
    device : str
        The device the fit runs on (chooses the backend).
    """
    created = False
    if dist.is_available() and not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            backend = "nccl" if str(device).startswith("cuda") else "gloo"
            store, rank, world_size = next(dist.rendezvous("env://"))
            store = dist.PrefixStore(f"mne_fusion_{next(_groups_created)}", store)
            dist.init_process_group(
                backend, store=store, rank=rank, world_size=world_size
            )
            created = True
    shard = Shard()
    if dist.is_available() and dist.is_initialized():
        shard = Shard(dist.get_rank(), dist.get_world_size())
    try:
        yield shard
    except BaseException:
        if created:
            dist.destroy_process_group()
        raise
    if created:
        # every rank done with its last collective before any closes its
        # connections: a gloo peer torn down mid-broadcast aborts the other
        # process ("terminate called without an active exception"); not after an
        # error, where the other ranks may never reach the barrier
        dist.barrier()
        dist.destroy_process_group()
