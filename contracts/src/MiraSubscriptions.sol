// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Owned} from "./Owned.sol";
import {IMiraConsumer} from "./consumer/IMiraConsumer.sol";
import {IMiraSubscriptions} from "./consumer/IMiraSubscriptions.sol";

/// @title MiraSubscriptions
/// @notice Subscriptions of consumer contracts to feeds, and the callbacks transmit makes
///         (see IMiraSubscriptions). MiraOracle inherits it and supplies the feed hooks.
/// @dev Hand-written rather than OpenZeppelin's ReentrancyGuard/Address: the lock must also
///      refuse transmit itself and must cost nothing when no feed of a report has subscribers
///      (a transient flag set only around the callbacks), and the call must forward an exact
///      gas amount without copying return data, which Address.functionCall does not offer.
///
///      Per callback the hot path touches: the feed's subscriber list entry (one cold slot), the
///      subscription's first slot (balance ‖ gas limit: one cold slot, written once), the
///      consumer's account (EXTCODESIZE cold, then a warm CALL); per report with callbacks: the
///      pricing slot, each subscribed feed's list length and the transmitter's reimbursement.
abstract contract MiraSubscriptions is IMiraSubscriptions, Owned {
    /// @notice The largest callback gas limit (Chainlink VRF's default maximum).
    uint256 public constant MAX_CALLBACK_GAS_LIMIT = 2_500_000;
    /// @notice The per-feed subscriber cap a new oracle starts with.
    uint256 internal constant DEFAULT_MAX_SUBSCRIBERS = 16;
    /// @notice The highest cap the owner can set: bounds transmit's work per feed.
    uint256 public constant MAX_SUBSCRIBERS_LIMIT = 64;
    /// @notice The highest premium: 100 % on top of the gas.
    uint256 internal constant MAX_PREMIUM_BPS = 10_000;
    /// @notice The highest fixed overhead per callback, in gas.
    uint256 internal constant MAX_OVERHEAD_GAS = 100_000;
    /// @notice The premium a new oracle starts with (10 %).
    uint256 internal constant DEFAULT_PREMIUM_BPS = 1000;
    /// @notice The fixed overhead a new oracle charges per callback: about what the transmitter
    ///         spends on one beyond the consumer's own gas (`mira bench gas`).
    uint256 internal constant DEFAULT_OVERHEAD_GAS = 15_000;
    uint256 internal constant BPS = 10_000;
    /// @notice The callback gas budget a new oracle starts with: a third of a 30M-gas block, so a
    ///         report with every callback at its limit always fits with room for the rest.
    uint256 internal constant DEFAULT_CALLBACK_GAS_BUDGET = 10_000_000;
    /// @notice What the budget counts per feed of a subscription beyond its gas limit: the
    ///         transmitter's own work per callback (cold subscriber-list and subscription slots,
    ///         the consumer's cold account, the deposit write, a failure's event) with room to
    ///         spare, so that many consumers with tiny limits cannot overflow a block either.
    uint256 public constant CALLBACK_RESERVE_GAS = 25_000;
    /// @dev Gas spent between reading gas() and the CALL handing the consumer its limit: the
    ///      checks and stack work in between (< 100) and the warm CALL's own 100. Measured by the
    ///      exact-gas fuzz test (ConsumerCallbacks.t.sol), with a wide margin.
    uint256 internal constant CALL_RESERVE = 400;
    /// @dev miraCallback((bytes32,int128,uint64,uint64)[]): selector, head (offset, length),
    ///      then four words per update.
    uint256 internal constant CALLDATA_HEAD = 68;
    uint256 internal constant COUNT_SHIFT = 160;
    /// @dev Gas for reading a consumer's miraSubscriptionManager(): an immutable costs a few
    ///      hundred, a storage read a cold 2,100; bounded so a consumer cannot make subscribe
    ///      costly.
    uint256 internal constant CONSENT_GAS = 30_000;
    uint256 internal constant U128 = 0xffffffffffffffffffffffffffffffff;
    uint256 internal constant U160 = 0x00ffffffffffffffffffffffffffffffffffffffff;

    /// @dev Slot 0 is all the callbacks read and write.
    struct Subscription {
        uint128 balance;
        uint32 gasLimit;
        address owner;
        bytes32[] feedIds;
    }

    /// @dev One slot, read once per report with callbacks.
    struct Settings {
        uint16 maxSubscribers;
        uint16 premiumBps;
        uint32 overheadGas;
    }

    mapping(address consumer => Subscription) internal _subscriptions;
    /// @dev A feed's subscribers: slot 0 packs count << 160 | subscriber 0, slot j subscriber j,
    ///      so a report reads a feed's count and first subscriber in one slot.
    mapping(bytes32 feedId => uint256[MAX_SUBSCRIBERS_LIMIT]) internal _subscriberSlots;
    /// @dev Position + 1 of the feed in the consumer's feedIds (0: not subscribed).
    mapping(address consumer => mapping(bytes32 feedId => uint256)) internal _feedPositions;
    mapping(address transmitter => uint256) internal _reimbursements;
    Settings internal _settings;
    /// @dev Σ over subscriptions with feeds of their _weight: every report's callbacks together
    ///      cost at most that (each consumer is called once per report, over at most all its
    ///      feeds), and a subscription only grows while it stays within _callbackGasBudget, so
    ///      no set of subscribers can make a transmit need more gas than a block holds. Own
    ///      slots, apart from _settings: only subscribe and unsubscribe touch them, and
    ///      unpacked words keep MiraOracle's code under EIP-170.
    uint256 internal _callbackGasCommitted;
    uint256 internal _callbackGasBudget;
    /// @dev Set while transmit calls consumers back.
    bool internal transient _inCallbacks;

    constructor() {
        _settings = Settings({
            maxSubscribers: uint16(DEFAULT_MAX_SUBSCRIBERS),
            premiumBps: uint16(DEFAULT_PREMIUM_BPS),
            overheadGas: uint32(DEFAULT_OVERHEAD_GAS)
        });
        _callbackGasBudget = DEFAULT_CALLBACK_GAS_BUDGET;
    }

    modifier notInCallbacks() {
        _requireNotInCallbacks();
        _;
    }

    // ---------------------------------------------------------------- hooks (MiraOracle)

    /// @dev Reverts FeedNotRegistered unless `feedId` is registered.
    function _requireFeed(bytes32 feedId) internal view virtual;

    /// @dev Sets or clears the feed's "has subscribers" flag where transmit reads it.
    function _setSubscribedFlag(bytes32 feedId, bool subscribed) internal virtual;

    // ---------------------------------------------------------------- management

    /// @inheritdoc IMiraSubscriptions
    function subscribe(address consumer, bytes32[] calldata feedIds, uint32 gasLimit)
        external
        payable
        notInCallbacks
    {
        if (feedIds.length == 0) revert NoFeeds();
        if (gasLimit == 0 || gasLimit > MAX_CALLBACK_GAS_LIMIT) {
            revert InvalidCallbackGasLimit(gasLimit, MAX_CALLBACK_GAS_LIMIT);
        }
        if (consumer.code.length == 0) revert ConsumerNotContract(consumer);
        Subscription storage s = _subscriptions[consumer];
        if (s.owner == address(0)) {
            _requireConsent(consumer);
            s.owner = msg.sender;
            emit SubscriptionCreated(consumer, msg.sender);
        } else if (s.owner != msg.sender) {
            revert NotSubscriptionOwner(consumer, msg.sender);
        }
        uint256 balance = s.balance + msg.value;
        uint256 minimum = callbackCost(gasLimit, tx.gasprice);
        if (minimum == 0) minimum = 1;
        if (balance < minimum) revert DepositTooSmall(balance, minimum);
        s.balance = _toBalance(balance);
        if (msg.value != 0) emit Deposited(consumer, msg.sender, msg.value, balance);
        uint256 cap = _settings.maxSubscribers;
        uint256 before = _weight(s.gasLimit, s.feedIds.length);
        if (s.gasLimit != gasLimit) {
            s.gasLimit = gasLimit;
            emit CallbackGasLimitSet(consumer, gasLimit);
        }
        for (uint256 i; i < feedIds.length; ++i) {
            bytes32 feedId = feedIds[i];
            _requireFeed(feedId);
            if (_feedPositions[consumer][feedId] != 0) revert AlreadySubscribed(consumer, feedId);
            uint256[MAX_SUBSCRIBERS_LIMIT] storage list = _subscriberSlots[feedId];
            uint256 head = list[0];
            uint256 count = head >> COUNT_SHIFT;
            if (count >= cap) revert TooManySubscribers(feedId, cap);
            if (count == 0) {
                _setSubscribedFlag(feedId, true);
                list[0] = (1 << COUNT_SHIFT) | uint160(consumer);
            } else {
                list[count] = uint160(consumer);
                list[0] = head + (1 << COUNT_SHIFT);
            }
            s.feedIds.push(feedId);
            _feedPositions[consumer][feedId] = s.feedIds.length;
            emit FeedSubscribed(consumer, feedId);
        }
        // gasLimit is set and at least one feed added above: the weight after this call
        uint256 weight = _weight(gasLimit, s.feedIds.length);
        uint256 committed;
        unchecked {
            // _callbackGasCommitted includes `before`; weights are tiny next to 2^256 (_weight)
            committed = _callbackGasCommitted - before + weight;
        }
        // only a subscription that grows is held to the budget: one lowered below what is in use
        // refuses new weight and never stops existing subscriptions from changing or shrinking
        uint256 budget = _callbackGasBudget;
        if (weight > before && committed > budget) revert CallbackGasBudgetExceeded(committed, budget);
        _callbackGasCommitted = committed;
    }

    /// @inheritdoc IMiraSubscriptions
    function unsubscribe(address consumer, bytes32[] calldata feedIds) external notInCallbacks {
        if (feedIds.length == 0) revert NoFeeds();
        Subscription storage s = _ownedSubscription(consumer);
        uint256 before = _weight(s.gasLimit, s.feedIds.length);
        for (uint256 i; i < feedIds.length; ++i) {
            bytes32 feedId = feedIds[i];
            uint256 position = _feedPositions[consumer][feedId];
            if (position == 0) revert NotSubscribed(consumer, feedId);
            // swap-and-pop from the consumer's feeds
            bytes32 movedFeed = s.feedIds[s.feedIds.length - 1];
            s.feedIds[position - 1] = movedFeed;
            _feedPositions[consumer][movedFeed] = position;
            s.feedIds.pop();
            delete _feedPositions[consumer][feedId];
            // and from the feed's subscribers (at most MAX_SUBSCRIBERS_LIMIT entries): the last
            // one moves into its place
            uint256[MAX_SUBSCRIBERS_LIMIT] storage list = _subscriberSlots[feedId];
            uint256 head = list[0];
            uint256 last = (head >> COUNT_SHIFT) - 1;
            uint256 moved = last == 0 ? head & U160 : list[last];
            uint256 j;
            while ((j == 0 ? head : list[j]) & U160 != uint160(consumer)) {
                ++j;
            }
            if (j != 0) list[j] = moved;
            if (last != 0) delete list[last];
            // count − 1, and subscriber 0 replaced if it was the one leaving
            head -= 1 << COUNT_SHIFT;
            if (j == 0) head = (head & ~U160) | moved;
            list[0] = last == 0 ? 0 : head;
            if (last == 0) _setSubscribedFlag(feedId, false);
            emit FeedUnsubscribed(consumer, feedId);
        }
        unchecked {
            // fewer feeds weigh less, and _callbackGasCommitted includes `before`
            _callbackGasCommitted -= before - _weight(s.gasLimit, s.feedIds.length);
        }
    }

    /// @inheritdoc IMiraSubscriptions
    function deposit(address consumer) external payable notInCallbacks {
        Subscription storage s = _subscriptions[consumer];
        if (s.owner == address(0)) revert NoSubscription(consumer);
        uint256 balance = s.balance + msg.value;
        s.balance = _toBalance(balance);
        emit Deposited(consumer, msg.sender, msg.value, balance);
    }

    /// @inheritdoc IMiraSubscriptions
    function withdraw(address consumer, address payable to, uint256 amount) external notInCallbacks {
        Subscription storage s = _ownedSubscription(consumer);
        uint256 balance = s.balance;
        if (amount > balance) revert InsufficientDeposit(consumer, amount, balance);
        s.balance = uint128(balance - amount);
        emit Withdrawn(consumer, to, amount, balance - amount);
        _send(to, amount);
    }

    /// @inheritdoc IMiraSubscriptions
    function withdrawReimbursement(address payable to) external notInCallbacks returns (uint256 amount) {
        amount = _reimbursements[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        delete _reimbursements[msg.sender];
        emit ReimbursementWithdrawn(msg.sender, to, amount);
        _send(to, amount);
    }

    /// @inheritdoc IMiraSubscriptions
    function setMaxSubscribers(uint256 maxSubscribers_) external notInCallbacks onlyOwner {
        if (maxSubscribers_ == 0 || maxSubscribers_ > MAX_SUBSCRIBERS_LIMIT) {
            revert InvalidMaxSubscribers(maxSubscribers_, MAX_SUBSCRIBERS_LIMIT);
        }
        _settings.maxSubscribers = uint16(maxSubscribers_);
        emit MaxSubscribersSet(maxSubscribers_);
    }

    /// @inheritdoc IMiraSubscriptions
    function setCallbackPricing(uint256 premiumBps, uint256 overheadGas) external notInCallbacks onlyOwner {
        if (premiumBps > MAX_PREMIUM_BPS || overheadGas > MAX_OVERHEAD_GAS) {
            revert InvalidCallbackPricing(premiumBps, overheadGas);
        }
        _settings.premiumBps = uint16(premiumBps);
        _settings.overheadGas = uint32(overheadGas);
        emit CallbackPricingSet(premiumBps, overheadGas);
    }

    /// @inheritdoc IMiraSubscriptions
    function setCallbackGasBudget(uint256 budget) external notInCallbacks onlyOwner {
        _callbackGasBudget = budget;
        emit CallbackGasBudgetSet(budget);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IMiraSubscriptions
    function subscriptionOf(address consumer)
        external
        view
        returns (address owner_, uint32 gasLimit, uint256 balance, bytes32[] memory feedIds)
    {
        Subscription storage s = _subscriptions[consumer];
        return (s.owner, s.gasLimit, s.balance, s.feedIds);
    }

    /// @inheritdoc IMiraSubscriptions
    function subscribersOf(bytes32 feedId) external view returns (address[] memory list) {
        uint256[MAX_SUBSCRIBERS_LIMIT] storage slots = _subscriberSlots[feedId];
        uint256 head = slots[0];
        list = new address[](head >> COUNT_SHIFT);
        for (uint256 j; j < list.length; ++j) {
            list[j] = address(uint160(j == 0 ? head : slots[j]));
        }
    }

    /// @dev How many consumers `feedId` has.
    function _subscriberCount(bytes32 feedId) internal view returns (uint256) {
        return _subscriberSlots[feedId][0] >> COUNT_SHIFT;
    }

    /// @inheritdoc IMiraSubscriptions
    function reimbursementOf(address transmitter) external view returns (uint256) {
        return _reimbursements[transmitter];
    }

    /// @inheritdoc IMiraSubscriptions
    function maxSubscribers() external view returns (uint256) {
        return _settings.maxSubscribers;
    }

    /// @inheritdoc IMiraSubscriptions
    function callbackPricing() external view returns (uint256 premiumBps, uint256 overheadGas) {
        Settings memory st = _settings;
        return (st.premiumBps, st.overheadGas);
    }

    /// @inheritdoc IMiraSubscriptions
    function callbackGasBudget() external view returns (uint256 committed, uint256 budget) {
        return (_callbackGasCommitted, _callbackGasBudget);
    }

    /// @inheritdoc IMiraSubscriptions
    function callbackCost(uint256 gasLimit, uint256 gasPrice) public view returns (uint256) {
        Settings memory st = _settings;
        return _fee(gasLimit, st.overheadGas, gasPrice, st.premiumBps);
    }

    /// @inheritdoc IMiraSubscriptions
    function callbackGasOf(bytes32[] calldata feedIds)
        external
        view
        returns (uint256 consumers, uint256 gasLimits)
    {
        // the calldata offset of each feed id, as _gather takes the updates' offsets
        uint256 offsets;
        assembly ("memory-safe") {
            offsets := mload(0x40)
            mstore(0x40, add(offsets, shl(5, feedIds.length)))
            for { let i := 0 } lt(i, feedIds.length) { i := add(i, 1) } {
                mstore(add(offsets, shl(5, i)), add(feedIds.offset, shl(5, i)))
            }
        }
        uint256 table;
        (table, consumers,) = _gather(offsets, feedIds.length);
        for (uint256 d; d < consumers; ++d) {
            gasLimits += _subscriptions[_consumerOf(table, d)].gasLimit;
        }
    }

    // ---------------------------------------------------------------- callbacks

    /// @dev Calls back every consumer subscribed to at least one of the report's applied updates
    ///      of subscribed feeds, once, with all of its updates in report order.
    /// @param updates memory words [updates, end): each the calldata offset of an applied update
    ///        (feedId ‖ value ‖ observedAt ‖ …, LibReport's layout) of a feed that had subscribers
    /// @param round   the report's round
    function _callBack(uint256 updates, uint256 end, uint64 round) internal {
        _inCallbacks = true;
        (uint256 table, uint256 distinct, uint256 most) = _gather(updates, (end - updates) >> 5);
        Settings memory st = _settings;
        // wei per 10,000 gas: (gas + overhead) × unitPrice / BPS is a callback's fee
        uint256 unitPrice = tx.gasprice * (BPS + st.premiumBps);
        uint256 earned;
        bytes memory data = new bytes(CALLDATA_HEAD + (most << 7));
        uint256 length;
        for (uint256 d; d < distinct; ++d) {
            // consumers of one feed and no other get the same single update: encoded once
            if (d == 0 || !_sameSingleUpdate(table, d)) length = _encodeCallback(data, table, d, round);
            earned += _callOne(_consumerOf(table, d), data, length, round, unitPrice, st.overheadGas);
        }
        if (earned != 0) _reimbursements[msg.sender] += earned;
        _inCallbacks = false;
    }

    /// @dev Each distinct subscriber of the feeds whose ids are at the calldata offsets in memory
    ///      words [updates, updates + 32·n), in order of first appearance, with the offsets of
    ///      its feeds. Memory (hand-laid: Solidity arrays would add bounds checks, and code size
    ///      is short under EIP-170): `table` holds `distinct` records of four words
    ///      [consumer, first node, last node, count]; a node is two words [offset, next node].
    ///      Finding a consumer seen for an earlier feed is a linear search of the records so far
    ///      (none for the first feed: a feed's list has no duplicates); `most` is the largest
    ///      count. Bounded by MAX_SUBSCRIBERS_LIMIT per feed.
    function _gather(uint256 updates, uint256 n)
        internal
        view
        returns (uint256 table, uint256 distinct, uint256 most)
    {
        uint256 listsSlot;
        assembly ("memory-safe") {
            listsSlot := _subscriberSlots.slot
            let pairs := 0
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(0x00, calldataload(mload(add(updates, shl(5, i)))))
                mstore(0x20, listsSlot)
                pairs := add(pairs, shr(COUNT_SHIFT, sload(keccak256(0x00, 0x40))))
            }
            table := mload(0x40)
            let node := add(table, shl(7, pairs))
            mstore(0x40, add(node, shl(6, pairs)))
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let offset := mload(add(updates, shl(5, i)))
                mstore(0x00, calldataload(offset))
                mstore(0x20, listsSlot)
                let items := keccak256(0x00, 0x40)
                let head := sload(items) // warm: read for the count above
                let len := shr(COUNT_SHIFT, head)
                let before := distinct
                for { let j := 0 } lt(j, len) { j := add(j, 1) } {
                    let c := and(head, U160)
                    if j { c := and(sload(add(items, j)), U160) }
                    let rec := 0
                    for { let m := 0 } lt(m, before) { m := add(m, 1) } {
                        let r := add(table, shl(7, m))
                        if eq(mload(r), c) {
                            rec := r
                            break
                        }
                    }
                    mstore(node, offset)
                    mstore(add(node, 0x20), 0)
                    switch rec
                    case 0 {
                        rec := add(table, shl(7, distinct))
                        distinct := add(distinct, 1)
                        mstore(rec, c)
                        mstore(add(rec, 0x20), node)
                        mstore(add(rec, 0x60), 0)
                    }
                    default { mstore(add(mload(add(rec, 0x40)), 0x20), node) }
                    mstore(add(rec, 0x40), node)
                    let count := add(mload(add(rec, 0x60)), 1)
                    mstore(add(rec, 0x60), count)
                    if gt(count, most) { most := count }
                    node := add(node, 0x40)
                }
            }
        }
    }

    /// @dev Whether records d − 1 and d each hold one update, the same one.
    function _sameSingleUpdate(uint256 table, uint256 d) private pure returns (bool same) {
        assembly ("memory-safe") {
            let rec := add(table, shl(7, d))
            let prev := sub(rec, 0x80)
            same := and(
                and(eq(mload(add(rec, 0x60)), 1), eq(mload(add(prev, 0x60)), 1)),
                eq(mload(mload(add(rec, 0x20))), mload(mload(add(prev, 0x20))))
            )
        }
    }

    function _consumerOf(uint256 table, uint256 d) private pure returns (address c) {
        assembly ("memory-safe") {
            c := mload(add(table, shl(7, d)))
        }
    }

    /// @dev Writes miraCallback(Update[]) for record `d` of `table` into `data`; returns its length.
    function _encodeCallback(bytes memory data, uint256 table, uint256 d, uint64 round)
        private
        pure
        returns (uint256 length)
    {
        bytes4 selector = IMiraConsumer.miraCallback.selector;
        assembly ("memory-safe") {
            let rec := add(table, shl(7, d))
            let count := mload(add(rec, 0x60))
            let node := mload(add(rec, 0x20))
            let buf := add(data, 0x20)
            mstore(buf, selector)
            mstore(add(buf, 4), 0x20)
            mstore(add(buf, 36), count)
            let q := add(buf, CALLDATA_HEAD)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let p := mload(node)
                let word := calldataload(add(p, 32)) // value int128 ‖ observedAt uint64 ‖ …
                mstore(q, calldataload(p))
                mstore(add(q, 32), sar(128, word))
                mstore(add(q, 64), and(shr(64, word), 0xffffffffffffffff))
                mstore(add(q, 96), round)
                q := add(q, 128)
                node := mload(add(node, 0x20))
            }
            length := sub(q, buf)
        }
    }

    /// @dev One consumer's callback: skip it if its deposit cannot cover the worst case, else
    ///      call it with exactly its gas limit and charge it. Returns the fee charged.
    function _callOne(
        address c,
        bytes memory data,
        uint256 length,
        uint64 round,
        uint256 unitPrice,
        uint256 overheadGas
    ) private returns (uint256 fee) {
        // the subscription's first slot, read and written once: balance (bits 0..127) and gas
        // limit (128..159), Solidity's packing of Subscription
        uint256 slot;
        uint256 word;
        assembly ("memory-safe") {
            mstore(0x00, c)
            mstore(0x20, _subscriptions.slot)
            slot := keccak256(0x00, 0x40)
            word := sload(slot)
        }
        uint256 balance = word & U128;
        uint256 gasLimit = uint32(word >> 128);
        uint256 required = (gasLimit + overheadGas) * unitPrice / BPS;
        if (balance < required) {
            emit CallbackSkipped(c, round, balance, required);
            return 0;
        }
        bool ok;
        bool hasCode;
        uint256 used;
        bytes4 tooLittleGas = InsufficientGasForCallback.selector;
        assembly ("memory-safe") {
            // EXTCODESIZE warms the account (EIP-2929), so the CALL below costs a fixed 100
            hasCode := gt(extcodesize(c), 0)
            if hasCode {
                let g := gas()
                // EIP-150: a CALL forwards at most all but 1/64 of what is left after its own
                // cost. The consumer gets exactly gasLimit iff that share reaches it; if not, the
                // whole transmit reverts rather than let a transmitter starve the consumer.
                if lt(g, add(add(gasLimit, div(gasLimit, 63)), CALL_RESERVE)) {
                    mstore(0x00, tooLittleGas)
                    mstore(0x04, c)
                    mstore(0x24, gasLimit)
                    revert(0x00, 0x44)
                }
                // no return data is copied (out size 0): a returndata bomb costs its sender only
                ok := call(gasLimit, c, 0, add(data, 0x20), length, 0, 0)
                used := sub(g, gas())
            }
        }
        if (used > gasLimit) used = gasLimit;
        if (!hasCode) {
            emit CallbackFailed(c, round, CallbackFailure.NoCode);
        } else if (!ok) {
            emit CallbackFailed(
                c, round, used == gasLimit ? CallbackFailure.GasExhausted : CallbackFailure.Reverted
            );
        }
        fee = (used + overheadGas) * unitPrice / BPS;
        // fee ≤ required ≤ balance (`used` is capped at gasLimit), so only the balance bits change
        assembly ("memory-safe") {
            sstore(slot, sub(word, fee))
        }
    }

    // ---------------------------------------------------------------- internals

    function _fee(uint256 gas_, uint256 overheadGas, uint256 gasPrice, uint256 premiumBps)
        internal
        pure
        returns (uint256)
    {
        return (gas_ + overheadGas) * gasPrice * (BPS + premiumBps) / BPS;
    }

    /// @dev What a subscription with `gasLimit` and `feeds` feeds counts against the budget:
    ///      the most one report's callback of it can cost (0 without feeds: never called).
    ///      Unchecked: gasLimit < 2^32 and feeds is the length of a storage array (each entry
    ///      paid for with a storage write), so neither this nor any sum of them nears 2^256.
    function _weight(uint256 gasLimit, uint256 feeds) private pure returns (uint256 w) {
        unchecked {
            if (feeds != 0) w = gasLimit + feeds * CALLBACK_RESERVE_GAS;
        }
    }

    function _requireNotInCallbacks() internal view {
        if (_inCallbacks) revert CallbacksInProgress();
    }

    /// @dev A subscription is created only with its consumer's consent: by the consumer itself,
    ///      or by the address its miraSubscriptionManager() names. Otherwise anyone could
    ///      subscribe someone else's consumer first, choose its feeds and gas limit, and own it.
    ///      Read with a bounded-gas staticcall; a consumer without the view, reverting, or
    ///      returning anything but one word equal to the caller refuses.
    function _requireConsent(address consumer) private view {
        if (msg.sender == consumer) return;
        bytes4 selector = IMiraConsumer.miraSubscriptionManager.selector;
        bool consents;
        assembly ("memory-safe") {
            mstore(0x00, selector)
            // at most one word of return data is copied, into scratch space
            let ok := staticcall(CONSENT_GAS, consumer, 0x00, 0x04, 0x00, 0x20)
            consents := and(and(ok, gt(returndatasize(), 0x1f)), eq(mload(0x00), caller()))
        }
        if (!consents) revert SubscriptionNotConsented(consumer, msg.sender);
    }

    function _ownedSubscription(address consumer) private view returns (Subscription storage s) {
        s = _subscriptions[consumer];
        if (s.owner == address(0)) revert NoSubscription(consumer);
        if (s.owner != msg.sender) revert NotSubscriptionOwner(consumer, msg.sender);
    }

    /// @dev A deposit is a sum of msg.values, so it stays below all the ether there is
    ///      (~1.2·10^26 wei), far from 2^128: the cast cannot truncate.
    function _toBalance(uint256 balance) private pure returns (uint128) {
        return uint128(balance);
    }

    function _send(address payable to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
