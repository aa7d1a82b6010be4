"""Authenticated peer-to-peer messaging between committee members.

``wire`` is the one codec of a p2p message (versioned header, payload, signature by the
sender's identity key); ``auth`` decides whether a decoded message is acceptable
(member, epoch, replay, rate); ``transport`` carries messages over aiohttp.
"""
