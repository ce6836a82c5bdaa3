"""nodes.py - what a host's node does with ttsm: its dropdowns come from
the engine registry (engine_info), and running it loads by config - a
cache hit after the first time, an eviction when the budget needs room -
and calls the cached engine object. The node keeps no cache of its own."""
import ttsm


def dropdowns(engine):
    """The choices a node shows for an engine: models, languages, params."""
    info = ttsm.engine_info(engine)
    return {"model": [m.name for m in info.models], "language": info.languages,
            "default_model": info.default_model,
            "params": {k: p.values for k, p in info.params.items()}}


def tts_node(mgr, engine, text, language=None, model=None, device="auto"):
    """One run of the node: (waveform, sample_rate)."""
    with mgr.load(engine, model=model, language=language, device=device) as m:
        return m.engine.synthesize(text)
