"""tiny_engines.py - two small but real torch.nn engines, registered with
ttsm so that the one cache holds the modules themselves, not only their
weights. Their weights are the stand-in checkpoints of examples/models
(ChatterBox's t3_cfg, ve and s3gen; an F5-TTS transformer and the Vocos
vocoder), bound into the modules without a copy: the modules are built on
the meta device and Model.bind() puts ttsm's tensors into them.

Each engine synthesises a deterministic waveform from text: real layers,
real forward passes, nothing random. They cannot speak (the weights are a
few numbers each); they show what a node pack's engines look like."""
import math

import torch

import ttsm

RATE = 24000
HOP = 240  # samples per frame


# ---- ChatterBox-shaped: text embedding -> voice-conditioned LSTM -> tokens -> vocoder

class T3(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.text_emb = torch.nn.Embedding(16, 4, device="meta")
        self.speech_head = torch.nn.Linear(4, 16, bias=False, device="meta")


class VoiceEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 4, device="meta")
        self.proj = torch.nn.Linear(4, 4, device="meta")


class Mel2Wav(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_pre = torch.nn.Conv1d(4, 4, 3, padding=1, device="meta")
        self.conv_post = torch.nn.Conv1d(4, 1, 3, padding=1, bias=False, device="meta")


class S3Gen(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mel2wav = Mel2Wav()


class TinyChatterbox(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.t3, self.ve, self.s3gen = T3(), VoiceEncoder(), S3Gen()
        # Zero-copy: every parameter becomes ttsm's tensor. The checkpoints
        # hold more than these layers use (strict=False leaves the rest),
        # but every layer here must be filled.
        for part, comp in ((self.t3, "t3_cfg"), (self.ve, "ve"), (self.s3gen, "s3gen")):
            missing = weights.bind(part, component=comp, strict=False).missing_keys
            if missing:
                raise ValueError("%s lacks %s" % (comp, ", ".join(missing)))
        self.register_buffer("speaker", weights.state_dict("conds")["t3.speaker_emb"])
        # Built here, not loaded: its bytes are charged to the budget.
        self.register_buffer("pitch", 110.0 * 2 ** (torch.arange(16) / 12.0))

    @torch.no_grad()
    def synthesize(self, text):
        ids = torch.tensor([b % 16 for b in text.encode("utf-8")] or [0])
        x = self.t3.text_emb(ids) + self.speaker
        h, _ = self.ve.lstm(x)
        tokens = self.t3.speech_head(self.ve.proj(h)).argmax(-1)
        mel = self.t3.text_emb(tokens).t().unsqueeze(0)  # [1, 4, frames]
        env = torch.tanh(self.s3gen.mel2wav.conv_post(torch.tanh(self.s3gen.mel2wav.conv_pre(mel))))
        t = torch.arange(HOP) / RATE
        frames = [e * torch.sin(2 * math.pi * self.pitch[k] * t)
                  for e, k in zip(env[0, 0], tokens)]
        return torch.cat(frames), RATE


# ---- F5-TTS-shaped: a transformer block over text -> mel -> a Vocos-like head

class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.Module()
        for name in ("to_q", "to_k", "to_v"):
            setattr(self.attn, name, torch.nn.Linear(4, 4, bias=False, device="meta"))
        self.attn.to_out = torch.nn.ModuleList([torch.nn.Linear(4, 4, bias=False, device="meta")])
        self.ff = torch.nn.Module()
        self.ff.ff = torch.nn.Sequential(torch.nn.Sequential(
            torch.nn.Linear(4, 8, bias=False, device="meta")))


class Transformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.time_embed = torch.nn.Module()
        self.time_embed.time_mlp = torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False,
                                                                       device="meta"))
        self.text_embed = torch.nn.Module()
        self.text_embed.text_embed = torch.nn.Embedding(16, 4, device="meta")
        self.input_embed = torch.nn.Module()
        self.input_embed.proj = torch.nn.Linear(8, 4, bias=False, device="meta")
        self.transformer_blocks = torch.nn.ModuleList([Block()])
        self.norm_out = torch.nn.Module()
        self.norm_out.linear = torch.nn.Linear(4, 8, bias=False, device="meta")
        self.proj_out = torch.nn.Linear(4, 4, bias=False, device="meta")


class Vocos(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Module()
        self.backbone.embed = torch.nn.Conv1d(4, 4, 7, padding=3, device="meta")
        self.head = torch.nn.Module()
        self.head.out = torch.nn.Linear(4, 6, device="meta")


class TinyF5(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.transformer, self.vocoder = Transformer(), Vocos()
        weights.bind(self.transformer, component="model", prefix="ema_model.transformer.")
        missing = weights.bind(self.vocoder, component="vocoder", strict=False).missing_keys
        if missing:
            raise ValueError("vocoder lacks %s" % ", ".join(missing))
        self.register_buffer("window", torch.hann_window(HOP))

    @torch.no_grad()
    def synthesize(self, text):
        tr = self.transformer
        ids = torch.tensor([b % 16 for b in text.encode("utf-8")] or [0])
        x = tr.text_embed.text_embed(ids)
        x = x + tr.input_embed.proj(tr.time_embed.time_mlp(x))
        blk = tr.transformer_blocks[0]
        q, k, v = blk.attn.to_q(x), blk.attn.to_k(x), blk.attn.to_v(x)
        x = x + blk.attn.to_out[0](torch.softmax(q @ k.t() / 2.0, -1) @ v)
        x = x + 0.1 * blk.ff.ff(x)[:, :4] + 0.1 * tr.norm_out.linear(x)[:, 4:]
        mel = tr.proj_out(x)                                         # [frames, 4]
        feats = self.vocoder.backbone.embed(mel.t().unsqueeze(0))[0].t()
        harm = torch.tanh(self.vocoder.head.out(feats))              # [frames, 6]
        t = torch.arange(HOP) / RATE
        base = torch.stack([torch.sin(2 * math.pi * 150.0 * (h + 1) * t) for h in range(6)])
        return (harm @ base * self.window).reshape(-1) / 6.0, RATE


# ---- registration: the factories the cache calls, once per load

def build_chatterbox(config, weights, ctx):
    net = TinyChatterbox(weights).eval()
    ctx.charge(net.pitch.numel() * net.pitch.element_size())  # what the factory allocated
    return net


def build_f5(config, weights, ctx):
    net = TinyF5(weights).eval()
    ctx.charge(net.window.numel() * net.window.element_size())
    return net


def register():
    """Makes the cache build these modules for every load of chatterbox and
    f5tts (process-wide). 1 KiB is reserved for each before its factory
    runs, then the entry is charged what the factory reports."""
    ttsm.register_engine("chatterbox", build_chatterbox, extra_bytes=1024)
    ttsm.register_engine("f5tts", build_f5, extra_bytes=1024)
