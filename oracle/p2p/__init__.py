"""Authenticated peer-to-peer messaging between committee members.

``wire`` is the codec of every p2p message's envelope (versioned header, payload bytes,
signature by the sender's identity key); the payloads' codecs live with the protocols that
own them (``oracle.reporting.messages``, ``oracle.node.keygen_messages``). ``auth``
decides whether a decoded message is acceptable (member, epoch, replay, rate);
``transport`` carries messages over aiohttp.
"""
