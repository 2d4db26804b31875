"""Deictic prompts: questions that point at content the text does not carry.

"How do I solve this equation below?", "Who can translate the text in this picture?", "What does
this code do?" with no code: the question's meaning is in something the client saw (an image it
could not attach, a paste that got lost) and the cache never sees. Two such questions embed
alike whatever they point at, and an answer to one answers nothing about the other. So a prompt
that refers to unseen content is neither served from the cache nor stored in it
(semcache/decision.py, semcache.gateway.answer_cacheable).

Only the prompt text is read: a conversation whose earlier turns carry the content loses its
semantic hits on such a follow-up, which is the safe side. Plain regular expressions on a short
text: microseconds, once per text (semcache.guards.text_features caches them).
"""

import re

# Things a question can point at that a text prompt does not carry by itself.
_MEDIA = (
    r"(?:picture|pictures|pic|pics|image|images|photo|photos|photograph|screenshot|screenshots|"
    r"video|videos|clip|gif|meme|drawing|painting|diagram|graph|chart|figure|map|sign|symbol|"
    r"logo|handwriting|code|snippet|program|script|function|equation|equations|expression|"
    r"integral|matrix|circuit|problem|puzzle|riddle|question|sentence|sentences|text|passage|"
    r"paragraph|essay|poem|lyrics|command|quote|quotation|statement|phrase|word|words|article|link|url|file|"
    r"document|pdf|table|list|sequence|series|message|email|letter|song|tune)"
)
# "this math equation", "the following C++ code", "the attached handwritten note's text": the
# pointer, up to two modifiers, the thing. "that"/"those" are left out: "Is it true that code
# reviews help?" is no pointer.
_POINTED = re.compile(
    r"\b(?:this|these|the following|following|the above|the below|the attached|attached)\s+"
    r"(?:[\w+#'-]+\s+){0,2}?" + _MEDIA + r"\b"
)
# "the equation below", "the code shown above", "the text given here".
_PLACED = re.compile(
    r"\b" + _MEDIA + r"\s+(?:(?:given|shown|written|mentioned|attached|posted|provided|pasted|"
    r"listed|included|displayed)\s+)?(?:below|above|here)\b"
)
# "who is the man in the picture?", "see attached", "what is the output of the following?",
# "which of these is prime?".
_OTHER = re.compile(
    r"\bin the (?:picture|image|photo|video|screenshot|gif|clip)\b"
    r"|\b(?:see|find|in the) attached\b"
    r"|\bthe following\s*[?:.]*$"
    r"|\bwhich of (?:these|those|the following)\b"
)
# A bare "this": "what does this mean?", "can anyone solve this?". Only in a prompt's first
# sentence: after one ("My phone will not charge. How can I solve this?") it points at that.
_BARE = re.compile(
    r"\b(?:what|who) (?:is|are) (?:this|these)\s*[?.!]*$"
    r"|\bwhat does this (?:mean|say|do|show)\b"
    r"|\b(?:solve|translate|identify|decode|decipher|interpret|explain|read|proofread|correct) "
    r"(?:this|these)\s*[?.!]*$"
)
_SENTENCE_END = re.compile(r"[.?!]\s+\S")
# A prompt that brings its content along: a colon or quotes followed by text, code or math
# characters, or simply a long text (a description in the prompt itself).
_CARRIED = re.compile(r":\s*\S.{2,}|[\"“”«»`].+[\"“”«»`]|[{};=<>^\\|]|\d\s*[-+*/]\s*\d")
_LONG = 200  # characters: a prompt this long describes what it points at


def refers_to_unseen(text: str) -> bool:
    """Return whether `text` points at content (an image, code, an equation, "the following")
    that it does not itself carry."""
    lowered = text.lower().replace("’", "'")
    bare = _BARE.search(lowered)
    if bare and _SENTENCE_END.search(lowered, 0, bare.start()):
        bare = None
    if not (bare or _POINTED.search(lowered) or _PLACED.search(lowered)
            or _OTHER.search(lowered)):
        return False
    return len(text) < _LONG and not _CARRIED.search(text)
