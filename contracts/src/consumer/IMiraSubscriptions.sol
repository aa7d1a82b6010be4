// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IMiraSubscriptions
/// @notice Subscribe a contract (an IMiraConsumer) to feeds of a MiraOracle: every report that
///         applies an update of one of its feeds calls it back once, in the same transaction,
///         with all of its applied updates.
///
///         - A subscription belongs to one consumer contract and is managed by its owner: the
///           address that created it with `subscribe`, which must be the consumer itself or the
///           address its `miraSubscriptionManager()` names (IMiraConsumer), so nobody can
///           subscribe, and so own, someone else's consumer. It has one callback gas limit and one ETH
///           deposit shared by all its feeds. Anyone may top the deposit up (`deposit`); only
///           the owner adds feeds, changes the gas limit, unsubscribes and withdraws.
///         - Exact gas: a consumer's callback gets exactly its gas limit. If the transmitter sent
///           too little gas for that (EIP-150 keeps back 1/64 of what is left), the whole
///           transmit reverts `InsufficientGasForCallback`, so no transmitter can skip a
///           consumer by starving it. A callback therefore fails only having had its full gas.
///         - Isolation: a callback that reverts, exhausts its gas, returns huge data (never
///           copied), or a consumer without code costs only its own callback (`CallbackFailed`).
///           During the callbacks every subscription-changing function and transmit itself
///           revert `CallbacksInProgress`.
///         - Payment: each callback (delivered or failed) costs its consumer's deposit
///           (gas used by the callback + callbackOverheadGas) × tx.gasprice × (10,000 +
///           premiumBps) / 10,000, credited to the transmitter (the transaction's sender), who
///           withdraws it with `withdrawReimbursement` (nothing is ever pushed during transmit).
///           A consumer whose deposit cannot cover its worst case (its gas limit in place of the
///           gas used) is skipped with `CallbackSkipped`, and called again once topped up.
///         - Gas budget: the subscriptions together may commit at most callbackGasBudget gas
///           (owner-set; 10M at deployment): Σ over subscriptions with feeds of (gas limit +
///           CALLBACK_RESERVE_GAS × feeds). A report's callbacks never cost more, so subscribers
///           cannot make a transmit need more gas than a block holds (which, with exact gas,
///           would freeze the feeds). `subscribe` refuses what would exceed it.
///         - Feeds without subscribers pay nothing: whether a feed has any is a flag in the ring
///           slot transmit reads anyway.
interface IMiraSubscriptions {
    /// @notice Why a callback failed (it always had its full gas limit).
    enum CallbackFailure {
        Reverted, // reverted, returning gas (includes re-entry refused by CallbacksInProgress)
        GasExhausted, // used its whole gas limit without returning (out of gas, invalid opcode)
        NoCode // the consumer has no code (self-destructed in its creation transaction, or never had any)
    }

    /// @notice `owner` created the subscription of `consumer`.
    event SubscriptionCreated(address indexed consumer, address indexed owner);
    /// @notice `consumer` is called back on updates of `feedId` from now on.
    event FeedSubscribed(address indexed consumer, bytes32 indexed feedId);
    /// @notice `consumer` is no longer called back on updates of `feedId`.
    event FeedUnsubscribed(address indexed consumer, bytes32 indexed feedId);
    /// @notice The callback gas limit of `consumer` is `gasLimit` from now on.
    event CallbackGasLimitSet(address indexed consumer, uint32 gasLimit);
    /// @notice `from` added `amount` wei to the deposit of `consumer`, which now holds `balance`.
    event Deposited(address indexed consumer, address indexed from, uint256 amount, uint256 balance);
    /// @notice The owner withdrew `amount` wei of the deposit of `consumer` to `to`; `balance` is left.
    event Withdrawn(address indexed consumer, address indexed to, uint256 amount, uint256 balance);
    /// @notice The callback of `consumer` for report round `round` failed, having had its full gas.
    event CallbackFailed(address indexed consumer, uint64 indexed round, CallbackFailure reason);
    /// @notice `consumer` was not called for report round `round`: its deposit `balance` is below
    ///         `required`, the worst case of one callback at this transaction's gas price.
    event CallbackSkipped(address indexed consumer, uint64 indexed round, uint256 balance, uint256 required);
    /// @notice `transmitter` withdrew `amount` wei of reimbursements to `to`.
    event ReimbursementWithdrawn(address indexed transmitter, address indexed to, uint256 amount);
    /// @notice Owner: each feed takes at most `maxSubscribers` subscribers from now on.
    event MaxSubscribersSet(uint256 maxSubscribers);
    /// @notice Owner: callbacks are priced with this premium and fixed overhead from now on.
    event CallbackPricingSet(uint256 premiumBps, uint256 overheadGas);
    /// @notice Owner: subscriptions may commit at most `budget` gas of callbacks from now on.
    event CallbackGasBudgetSet(uint256 budget);

    /// @notice The feed id was never registered.
    error FeedNotRegistered(bytes32 feedId);
    /// @notice `consumer` has no code: callbacks go to contracts only.
    error ConsumerNotContract(address consumer);
    /// @notice A callback gas limit of 0 or above `maxGasLimit` (MAX_CALLBACK_GAS_LIMIT).
    error InvalidCallbackGasLimit(uint256 gasLimit, uint256 maxGasLimit);
    /// @notice After this call the deposit would be `deposit` wei, below `minimum`: one callback's
    ///         worst case at this transaction's gas price (and at least 1 wei).
    error DepositTooSmall(uint256 deposit, uint256 minimum);
    /// @notice `caller` may not create the subscription of `consumer`: only the consumer itself
    ///         or the address its miraSubscriptionManager() returns may (a consumer without that
    ///         view, or one that reverts, consents to no one else).
    error SubscriptionNotConsented(address consumer, address caller);
    /// @notice Only the owner of the subscription of `consumer` may do this; `caller` is not it.
    error NotSubscriptionOwner(address consumer, address caller);
    /// @notice `consumer` has no subscription (`subscribe` creates one).
    error NoSubscription(address consumer);
    /// @notice `feedId` has `maxSubscribers` subscribers already.
    error TooManySubscribers(bytes32 feedId, uint256 maxSubscribers);
    /// @notice `consumer` is subscribed to `feedId` already.
    error AlreadySubscribed(address consumer, bytes32 feedId);
    /// @notice `consumer` is not subscribed to `feedId`.
    error NotSubscribed(address consumer, bytes32 feedId);
    /// @notice The list of feed ids is empty.
    error NoFeeds();
    /// @notice A withdrawal of `requested` wei from a deposit of `balance`.
    error InsufficientDeposit(address consumer, uint256 requested, uint256 balance);
    /// @notice Called during transmit's callbacks: re-entering transmit or changing any
    ///         subscription from a callback is refused.
    error CallbacksInProgress();
    /// @notice The transaction's gas left could not give `consumer` its full `gasLimit`:
    ///         the transmitter must send more gas (the whole transmit reverts).
    error InsufficientGasForCallback(address consumer, uint256 gasLimit);
    /// @notice A per-feed subscriber cap of 0 or above `limit` (MAX_SUBSCRIBERS_LIMIT, 64).
    error InvalidMaxSubscribers(uint256 maxSubscribers, uint256 limit);
    /// @notice A premium above 10,000 basis points or an overhead above 100,000 gas.
    error InvalidCallbackPricing(uint256 premiumBps, uint256 overheadGas);
    /// @notice This subscribe would take the callback gas the subscriptions commit to
    ///         `committed`, above the oracle's `budget` (see callbackGasBudget): lower the gas
    ///         limit or subscribe fewer feeds (or the oracle's owner raises the budget).
    error CallbackGasBudgetExceeded(uint256 committed, uint256 budget);
    /// @notice Sending `amount` wei to `to` failed.
    error TransferFailed(address to, uint256 amount);
    /// @notice `transmitter` has no reimbursement to withdraw.
    error NothingToWithdraw(address transmitter);

    /// @notice Subscribe `consumer` to `feedIds`, with callback gas limit `gasLimit` (1 to
    ///         MAX_CALLBACK_GAS_LIMIT), adding msg.value to its deposit. The first call creates the
    ///         subscription with the caller as its owner, and only the consumer itself or its
    ///         miraSubscriptionManager() may make it (SubscriptionNotConsented); later calls (owner only) add feeds and
    ///         replace the gas limit. Afterwards the deposit must cover one worst-case callback
    ///         at this transaction's gas price (`callbackCost(gasLimit, tx.gasprice)`, ≥ 1 wei).
    ///         Reverts on an unknown feed, a consumer without code, a feed already subscribed
    ///         or at its subscriber cap, or when the subscription would grow the gas the
    ///         subscriptions commit above the budget (CallbackGasBudgetExceeded).
    function subscribe(address consumer, bytes32[] calldata feedIds, uint32 gasLimit) external payable;

    /// @notice Owner: stop calling `consumer` back on `feedIds`. The deposit stays (withdraw it).
    function unsubscribe(address consumer, bytes32[] calldata feedIds) external;

    /// @notice Add msg.value to the deposit of `consumer` (anyone may).
    function deposit(address consumer) external payable;

    /// @notice Owner: send `amount` wei of the deposit of `consumer` to `to`.
    function withdraw(address consumer, address payable to, uint256 amount) external;

    /// @notice Send the caller's whole reimbursement (earned by transmitting reports with
    ///         callbacks) to `to`; returns the amount.
    function withdrawReimbursement(address payable to) external returns (uint256 amount);

    /// @notice Owner: cap the subscribers of each feed (1 to MAX_SUBSCRIBERS_LIMIT = 64; 16 at
    ///         deployment). Feeds above a lowered cap keep their subscribers.
    function setMaxSubscribers(uint256 maxSubscribers) external;

    /// @notice Owner: set the premium (basis points, ≤ 10,000; 1,000 at deployment) and the
    ///         fixed overhead (gas, ≤ 100,000; 15,000 at deployment) that callbacks are charged.
    function setCallbackPricing(uint256 premiumBps, uint256 overheadGas) external;

    /// @notice Owner: cap the gas all subscriptions together commit (10M at deployment). Set it well below the chain's block gas limit. Lowering it below
    ///         what is committed stops nothing: existing subscriptions keep being called and may
    ///         shrink; only subscriptions that would grow are refused.
    function setCallbackGasBudget(uint256 budget) external;

    /// @notice The subscription of `consumer`: owner (0 if none), callback gas limit, deposit in
    ///         wei, and its feeds.
    function subscriptionOf(address consumer)
        external
        view
        returns (address owner, uint32 gasLimit, uint256 balance, bytes32[] memory feedIds);

    /// @notice The consumers subscribed to `feedId`, in the order they are called.
    function subscribersOf(bytes32 feedId) external view returns (address[] memory);

    /// @notice Wei `transmitter` can withdraw with withdrawReimbursement.
    function reimbursementOf(address transmitter) external view returns (uint256);

    /// @notice The per-feed subscriber cap.
    function maxSubscribers() external view returns (uint256);

    /// @notice The premium (basis points) and the fixed overhead (gas) callbacks are charged.
    function callbackPricing() external view returns (uint256 premiumBps, uint256 overheadGas);

    /// @notice The callback gas the subscriptions commit (Σ over subscriptions with feeds of
    ///         gas limit + CALLBACK_RESERVE_GAS × feeds) and the most they may (setCallbackGasBudget).
    function callbackGasBudget() external view returns (uint256 committed, uint256 budget);

    /// @notice The most a callback with `gasLimit` can cost at `gasPrice`: what a deposit must
    ///         cover for the consumer to be called.
    function callbackCost(uint256 gasLimit, uint256 gasPrice) external view returns (uint256);

    /// @notice For transmitters estimating gas: the distinct consumers a report updating
    ///         `feedIds` would call back (funded or not) and the sum of their gas limits.
    function callbackGasOf(bytes32[] calldata feedIds)
        external
        view
        returns (uint256 consumers, uint256 gasLimits);
}
